//! Figures for the multi-tenant host (printed, not asserted):
//! * instantiation time per tenant run with the pooling allocator (target: under 50 µs),
//!   alone and with one call into the component;
//! * the host's resident memory while 100 tenants sync the fake Segment API at once.
//!
//! Run with `cargo bench -p baton-segment --bench multitenant`.

use baton_segment::commands::connection::Connection;
use baton_segment::engine::contract::SEGMENT_CONNECTOR_WASM;
use baton_segment::engine::{Runtime, RuntimeLimits};
use baton_segment::sandbox::{AddressClass, AddressPolicy, Origin, Secret};
use baton_segment::serve::config::{DEFAULT_INTERVAL, Tenant, TenantLimits, TokenSource};
use baton_segment::serve::{self, ServeOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::main]
async fn main() {
    instantiation().await;
    hundred_tenants().await;
}

async fn instantiation() {
    let started = Instant::now();
    let runtime = Runtime::new(
        SEGMENT_CONNECTOR_WASM,
        RuntimeLimits {
            max_instances: 16,
            ..RuntimeLimits::default()
        },
    )
    .unwrap();
    println!(
        "compile + link the bundled component: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let connection = Connection::to("http://127.0.0.1:9", Secret::new("unused")).unwrap();
    let run = connection.run_context(connection.policy());
    // Warm the pool's slots first.
    for _ in 0..50 {
        drop(runtime.instantiate(run.clone()).await.unwrap());
    }
    const N: u32 = 5000;
    let t = Instant::now();
    for _ in 0..N {
        let instance = runtime.instantiate(run.clone()).await.unwrap();
        drop(instance);
    }
    let per = t.elapsed() / N;
    println!(
        "instantiate + drop (store, WASI and HTTP contexts, limits), pooling: {:.1} µs per tenant run (target < 50 µs)",
        per.as_secs_f64() * 1e6
    );
    let t = Instant::now();
    for _ in 0..N {
        let mut instance = runtime.instantiate(run.clone()).await.unwrap();
        instance.metadata().await.unwrap();
    }
    let per = t.elapsed() / N;
    println!(
        "instantiate + one call (metadata) + drop: {:.1} µs",
        per.as_secs_f64() * 1e6
    );
}

async fn hundred_tenants() {
    const TENANTS: usize = 100;
    let fake = fakes::segment::FakeSegment::start(fakes::segment::FakeConfig::demo())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "demo-token").unwrap();
    let origin = Origin::parse(&fake.base_url()).unwrap();
    let tenants: Vec<Tenant> = (0..TENANTS)
        .map(|i| Tenant {
            id: format!("tenant-{i:03}"),
            origin: origin.clone(),
            token: TokenSource::File(token.clone()),
            output: dir.path().join(format!("tenant-{i:03}.c1z")),
            interval: DEFAULT_INTERVAL,
            connector: None,
            settings: BTreeMap::new(),
            limits: TenantLimits {
                memory_bytes: 64 << 20,
                cpu_per_call: Duration::from_secs(10),
                wall_per_call: Duration::from_secs(120),
                wall_per_sync: Duration::from_secs(600),
                concurrent_requests: 2,
                request_budget: None,
                response_max_bytes: 32 << 20,
                session_bytes: 64 << 20,
                allowed_origins: vec![origin.clone()],
                addresses: AddressPolicy::public_and(&[AddressClass::Loopback]),
            },
        })
        .collect();
    let before = rss_bytes();
    let peak = Arc::new(AtomicUsize::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let t = Instant::now();
    let report = serve::run(ServeOptions::once(tenants), std::future::pending())
        .await
        .unwrap();
    let took = t.elapsed();
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed).max(rss_bytes());
    println!(
        "{TENANTS} tenants syncing the demo workspace at once: {:.2} s, {} failed, {} requests to the fake",
        took.as_secs_f64(),
        report.failures.len(),
        fake.requests().len()
    );
    println!(
        "host resident memory: {:.1} MiB before, {:.1} MiB at peak ({:.2} MiB per tenant)",
        before as f64 / (1 << 20) as f64,
        peak as f64 / (1 << 20) as f64,
        (peak.saturating_sub(before)) as f64 / (1 << 20) as f64 / TENANTS as f64
    );
}
