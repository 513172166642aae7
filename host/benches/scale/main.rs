//! Sync at scale: the real `baton-segment` binary syncs generated workspaces (1k, 5k, 50k
//! users) from the fake Segment API with 20 ms per answer, on servers that keep connections
//! alive (with and without Nagle) or close them, and under a token-bucket read limit. Each
//! sync runs in a child process, so its peak RSS and CPU time are the host's alone.
//!
//! Printed for each scenario (figures, not assertions):
//! * requests / minimal: what the sync asked for against what the workspace needs at least;
//! * wall / bound: the bound is requests × latency / concurrency, or answered requests / rate
//!   when rate limited (the larger of the two);
//! * 429 share, peak in flight at the server, peak RSS, host CPU per request.
//!
//! Run: `cargo bench -p baton-segment --bench scale [-- NAME…]`; a NAME selects the scenarios
//! whose names contain it (`all` for every one; without names all but the 50k ones run).
//! `--binary LABEL=PATH` (repeatable) measures other builds of `baton-segment`, each scenario
//! with each build in turn (before/after figures from one run); `--by-endpoint` prints where
//! the requests went; `--timeline` how many requests were at the server, on average, in each
//! quarter second (`--timeline-ms MS`: in bins of MS); `--latency-ms MS` changes the latency (default 20); `--time-limit SECS`
//! (default 3600) stops a sync that runs away.

mod child;
mod scenario;

use fakes::segment::{FakeSegment, GenSpec, Workspace};
use scenario::{LATENCY, Scenario};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Options {
    names: Vec<String>,
    /// Builds of the host to measure, with their labels.
    binaries: Vec<(String, PathBuf)>,
    by_endpoint: bool,
    timeline: Option<Duration>,
    time_limit: Duration,
    latency: Duration,
}

fn options() -> Options {
    let mut o = Options {
        names: vec![],
        binaries: vec![],
        by_endpoint: false,
        timeline: None,
        time_limit: Duration::from_secs(3600),
        latency: LATENCY,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--binary" => {
                let arg = args.next().expect("--binary LABEL=PATH");
                let (label, path) = arg.split_once('=').unwrap_or(("other", &arg));
                o.binaries.push((label.to_string(), PathBuf::from(path)));
            }
            "--by-endpoint" => o.by_endpoint = true,
            "--timeline" => o.timeline = Some(Duration::from_millis(250)),
            "--timeline-ms" => {
                let ms = args.next().and_then(|s| s.parse().ok());
                o.timeline = Some(Duration::from_millis(ms.expect("--timeline-ms MS")));
            }
            "--latency-ms" => {
                let ms = args.next().and_then(|s| s.parse().ok());
                o.latency = Duration::from_millis(ms.expect("--latency-ms MS"));
            }
            "--time-limit" => {
                let secs = args.next().and_then(|s| s.parse().ok());
                o.time_limit = Duration::from_secs(secs.expect("--time-limit SECS"));
            }
            // What cargo passes to every bench (`--bench`), and other harness flags.
            flag if flag.starts_with("--") => {}
            name => o.names.push(name.to_string()),
        }
    }
    if o.binaries.is_empty() {
        let this = PathBuf::from(env!("CARGO_BIN_EXE_baton-segment"));
        o.binaries.push(("this".to_string(), this));
    }
    o
}

fn selected(all: Vec<Scenario>, names: &[String]) -> Vec<Scenario> {
    if names.is_empty() {
        return all.into_iter().filter(|s| !s.long).collect();
    }
    all.into_iter()
        .filter(|s| {
            names
                .iter()
                .any(|n| n == "all" || s.name.contains(n.as_str()))
        })
        .collect()
}

fn main() {
    let o = options();
    let scenarios = selected(scenario::all(), &o.names);
    if scenarios.is_empty() {
        let names: Vec<_> = scenario::all().iter().map(|s| s.name).collect();
        eprintln!("no scenario matches; scenarios: {}", names.join(", "));
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cache = tempfile::tempdir().expect("a cache directory");
    for (label, path) in &o.binaries {
        println!("host binary {label}: {}", path.display());
        rt.block_on(warm_up(path, &o, cache.path()));
    }
    println!(
        "latency {} ms per answer; bound = requests × latency / concurrency, or answered / rate when rate limited",
        o.latency.as_millis()
    );
    println!(
        "{:<14} {:<7} {:<18} {:>4} {:>8} {:>8} {:>6} {:>8} {:>8} {:>6} {:>6} {:>7} {:>8} {:>7}  result",
        "scenario",
        "host",
        "server",
        "conc",
        "requests",
        "minimal",
        "r/min",
        "wall s",
        "bound s",
        "w/b",
        "429 %",
        "peak in",
        "RSS MiB",
        "CPU µs"
    );
    for s in &scenarios {
        for (label, binary) in &o.binaries {
            rt.block_on(run(&o, s, (label, binary), cache.path()));
        }
    }
}

/// One sync by the host binary against `fake`, writing into `work_dir`.
fn host_sync<'a>(
    binary: &'a Path,
    fake: &FakeSegment,
    concurrency: u16,
    work_dir: &'a Path,
    cache_dir: &'a Path,
    o: &Options,
) -> child::Sync<'a> {
    child::Sync {
        binary,
        base_url: fake.base_url(),
        token: Scenario::token(),
        concurrency,
        work_dir,
        cache_dir,
        time_limit: o.time_limit,
    }
}

/// Compiles the component into the cache (not measured), so every scenario starts alike.
async fn warm_up(binary: &Path, o: &Options, cache: &Path) {
    let fake = FakeSegment::start(fakes::segment::FakeConfig::new(
        Scenario::token(),
        Workspace::generate(1, GenSpec::default()),
    ))
    .await
    .expect("the fake starts");
    let work = tempfile::tempdir().expect("a work directory");
    let sync = host_sync(binary, &fake, 4, work.path(), cache, o);
    let measured = tokio::task::block_in_place(|| sync.run()).expect("the host starts");
    println!(
        "warm-up (compiles the component into the cache): {:.1} s, exit {:?}",
        measured.wall.as_secs_f64(),
        measured.exit
    );
    fake.shutdown().await;
}

async fn run(o: &Options, s: &Scenario, (label, binary): (&str, &Path), cache: &Path) {
    let workspace = s.workspace();
    let minimal = scenario::minimal_requests(&workspace, s.lists_carry_permissions);
    // The fake's clock (its timings) starts about now.
    let fake_started = Instant::now();
    let fake = FakeSegment::start(s.fake_config(workspace, o.latency))
        .await
        .expect("the fake starts");
    let work = tempfile::tempdir().expect("a work directory");
    let sync = host_sync(binary, &fake, s.concurrency, work.path(), cache, o);
    let started = Instant::now();
    let measured = tokio::task::block_in_place(|| sync.run());
    let requests = fake.requests();
    let timings = fake.timings();
    let peak_in_flight = fake.peak_in_flight();
    fake.shutdown().await;
    let m = match measured {
        Ok(m) => m,
        Err(e) => {
            println!("{:<14} could not run the host: {e}", s.name);
            return;
        }
    };
    let total = requests.len();
    let limited = requests.iter().filter(|r| r.status == 429).count();
    let answered = total - limited;
    let latency_bound = o.latency.as_secs_f64() * total as f64 / f64::from(s.concurrency);
    let rate_bound = s
        .rate
        .map_or(0.0, |(per_second, _)| answered as f64 / per_second);
    let bound = latency_bound.max(rate_bound);
    let wall = m.wall.as_secs_f64();
    let result = match (m.exit, m.timed_out) {
        (Some(0), _) => format!(
            "ok ({:.1} MiB .c1z)",
            std::fs::metadata(sync.output()).map_or(0.0, |f| f.len() as f64 / 1048576.0)
        ),
        (_, true) => format!("TIMED OUT after {:.0} s", started.elapsed().as_secs_f64()),
        (Some(code), _) => format!("FAILED (exit {code})"),
        (None, _) => "FAILED (killed by a signal)".to_string(),
    };
    println!(
        "{:<14} {:<7} {:<18} {:>4} {:>8} {:>8} {:>6.2} {:>8.1} {:>8.1} {:>6.2} {:>6.1} {:>7} {:>8.0} {:>7.0}  {}",
        s.name,
        label,
        s.server.label(),
        s.concurrency,
        total,
        minimal,
        total as f64 / minimal as f64,
        wall,
        bound,
        wall / bound,
        100.0 * limited as f64 / total.max(1) as f64,
        peak_in_flight,
        m.peak_rss_bytes as f64 / 1048576.0,
        m.cpu.as_secs_f64() * 1e6 / total.max(1) as f64,
        result
    );
    if m.exit != Some(0) && !m.stderr_tail.is_empty() {
        for line in m.stderr_tail.lines() {
            println!("    | {line}");
        }
    }
    {
        let t = Occupancy::of(&timings, usize::from(s.concurrency));
        let first = timings.iter().map(|t| t.0).min().unwrap_or_default();
        let start_up = first.saturating_sub(m.spawned - fake_started);
        let busy_cpu = m.cpu_between(fake_started + first, fake_started + first + t.span);
        println!(
            "    start-up {:.2} s (to the first request); server busy {:.2} s (first arrival to last answer), fewer than {} requests at the server for {:.2} s of it; {:.2} s after it (writing the file, exit)",
            start_up.as_secs_f64(),
            t.span.as_secs_f64(),
            s.concurrency,
            t.short.as_secs_f64(),
            wall - t.span.as_secs_f64() - start_up.as_secs_f64()
        );
        let mut held: Vec<Duration> = timings
            .iter()
            .filter_map(|&(a, b)| b.map(|b| b - a))
            .collect();
        held.sort();
        let at = |q: f64| {
            held.get((q * held.len() as f64) as usize)
                .copied()
                .unwrap_or_default()
        };
        println!(
            "    time at the server per request (latency {} ms): median {:.1} ms, 90 % {:.1} ms, 99 % {:.1} ms",
            o.latency.as_millis(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.9).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3
        );
        println!(
            "    host CPU while the server was busy: {:.2} s, {:.0} µs per request",
            busy_cpu.as_secs_f64(),
            busy_cpu.as_secs_f64() * 1e6 / total.max(1) as f64
        );
    }
    if let Some(bin) = o.timeline {
        let line: Vec<String> = timeline(&timings, bin)
            .iter()
            .map(|n| format!("{n:.1}"))
            .collect();
        println!(
            "    in flight per {} ms: {}",
            bin.as_millis(),
            line.join(" ")
        );
    }
    if o.by_endpoint {
        let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for r in &requests {
            let e = by
                .entry(format!("{} {}", r.method, template(&r.path)))
                .or_default();
            e.0 += 1;
            e.1 += usize::from(r.status == 429);
        }
        for (endpoint, (n, limited)) in by {
            println!("    {endpoint:<32} {n:>7} requests, {limited:>6} answered 429");
        }
    }
}

/// How full the server was: from the arrival of the first request to the last answer, and
/// how long of that fewer than `full` requests were at the server.
struct Occupancy {
    span: Duration,
    short: Duration,
}

impl Occupancy {
    fn of(timings: &[(Duration, Option<Duration>)], full: usize) -> Occupancy {
        // +1 at each arrival, -1 at each answer, in time order.
        let mut events: Vec<(Duration, i64)> = Vec::with_capacity(timings.len() * 2);
        for &(arrived, answered) in timings {
            events.push((arrived, 1));
            if let Some(answered) = answered {
                events.push((answered, -1));
            }
        }
        events.sort();
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Occupancy {
                span: Duration::ZERO,
                short: Duration::ZERO,
            };
        };
        let (mut at, mut level, mut short) = (first.0, 0i64, Duration::ZERO);
        for &(t, change) in &events {
            if level < full as i64 {
                short += t - at;
            }
            at = t;
            level += change;
        }
        Occupancy {
            span: last.0 - first.0,
            short,
        }
    }
}

/// The average number of requests at the server in each `bin` from the first arrival.
fn timeline(timings: &[(Duration, Option<Duration>)], bin: Duration) -> Vec<f64> {
    let Some(first) = timings.iter().map(|t| t.0).min() else {
        return vec![];
    };
    let end = timings.iter().filter_map(|t| t.1).max().unwrap_or(first);
    let bins = ((end - first).as_secs_f64() / bin.as_secs_f64()).ceil() as usize;
    let mut busy = vec![0.0f64; bins.max(1)];
    for &(arrived, answered) in timings {
        let (a, b) = (arrived - first, answered.unwrap_or(end) - first);
        // Spread the request's time over the bins it overlaps.
        let (mut t, b) = (a.as_secs_f64(), b.as_secs_f64());
        while t < b {
            let mut i = (t / bin.as_secs_f64()) as usize;
            // Rounding can put t on its bin's end: that bin is done.
            if (i + 1) as f64 * bin.as_secs_f64() <= t {
                i += 1;
            }
            let bin_end = (i + 1) as f64 * bin.as_secs_f64();
            let upto = b.min(bin_end);
            if let Some(x) = busy.get_mut(i) {
                *x += upto - t;
            }
            t = upto;
        }
    }
    busy.iter().map(|x| x / bin.as_secs_f64()).collect()
}

/// `/groups/abc/users` → `/groups/{id}/users`.
fn template(path: &str) -> String {
    const LITERALS: [&str; 9] = [
        "users",
        "groups",
        "group",
        "invites",
        "roles",
        "sources",
        "warehouses",
        "functions",
        "spaces",
    ];
    path.split('/')
        .enumerate()
        .map(|(i, seg)| {
            if i == 0 || seg.is_empty() || LITERALS.contains(&seg) {
                seg
            } else {
                "{id}"
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
