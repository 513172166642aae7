//! `c1-fake`: the fake ConductorOne (token endpoint + BatonService over TLS) as a standalone
//! server with freshly generated credentials.
//!
//! Prints the environment a connector needs, one `KEY=value` per line:
//! `BATON_CLIENT_ID`, `BATON_CLIENT_SECRET`, `BATON_C1_API_HOST` and `C1_FAKE_CA_PEM` (the
//! path of the CA certificate to trust), then a blank line, then serves until Ctrl-C,
//! reporting hellos, finished tasks and uploads on stderr.

use clap::Parser;
use fakes::c1::{FakeC1, FakeC1Config};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "c1-fake",
    about = "A fake ConductorOne tenant (token endpoint + BatonService gRPC over TLS) on loopback"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Client name in the generated client id.
    #[arg(long, default_value = "baton-segment")]
    client_name: String,
    /// Where to write the CA certificate (PEM). Default: a file in the temp directory.
    #[arg(long)]
    ca_pem: Option<PathBuf>,
    /// Queue a full-sync task at start.
    #[arg(long)]
    sync_task: bool,
    /// `next_poll` answered by GetTask, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// `next_heartbeat` answered by GetTask and Heartbeat, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    heartbeat_ms: u64,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Fail this many token requests (503) first.
    #[arg(long, default_value_t = 0)]
    token_failures: u32,
    /// Fail this many uploads (Unavailable) first.
    #[arg(long, default_value_t = 0)]
    upload_failures: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let (mut cfg, client_secret) = FakeC1Config::generated(&args.client_name);
    cfg.next_poll = Duration::from_millis(args.poll_ms);
    cfg.next_heartbeat = Duration::from_millis(args.heartbeat_ms);
    cfg.token_ttl = Duration::from_secs(args.token_ttl_secs.max(1));
    cfg.token_endpoint_failures = args.token_failures;
    cfg.upload_failures = args.upload_failures;
    let client_id = cfg.client_id.clone();
    let fake = FakeC1::start_on(cfg, args.listen).await?;
    let ca_path = match args.ca_pem {
        Some(p) => p,
        None => std::env::temp_dir().join(format!("c1-fake-ca-{}.pem", fake.addr().port())),
    };
    fake.write_ca_pem(&ca_path)?;
    if args.sync_task {
        let id = fake.push_sync_task();
        eprintln!("c1-fake: queued sync task {id}");
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "BATON_CLIENT_ID={client_id}")?;
        writeln!(out, "BATON_CLIENT_SECRET={client_secret}")?;
        writeln!(out, "BATON_C1_API_HOST={}", fake.host())?;
        writeln!(out, "C1_FAKE_CA_PEM={}", ca_path.display())?;
        writeln!(out)?;
        out.flush()?;
    }
    eprintln!("c1-fake listening on {} (Ctrl-C to stop)", fake.url());

    let report = async {
        let (mut hellos, mut finished, mut uploads, mut failed) = (0, 0, 0, 0);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for h in fake.hellos().iter().skip(hellos) {
                eprintln!("c1-fake: hello from host {:?}", h.host_id);
            }
            hellos = fake.hellos().len();
            for u in fake.uploads().iter().skip(uploads) {
                eprintln!(
                    "c1-fake: upload for task {} complete: {} bytes in {} chunk(s)",
                    u.task_id,
                    u.bytes.len(),
                    u.chunk_sizes.len()
                );
            }
            uploads = fake.uploads().len();
            if fake.failed_uploads() != failed {
                failed = fake.failed_uploads();
                eprintln!("c1-fake: {failed} failed upload attempt(s) so far");
            }
            for f in fake.finished().iter().skip(finished) {
                eprintln!(
                    "c1-fake: task {} finished: {} (status {} {:?})",
                    f.task_id,
                    if f.is_success() { "success" } else { "error" },
                    f.status_code,
                    f.status_message
                );
            }
            finished = fake.finished().len();
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = report => {}
    }
    fake.shutdown().await;
    let _ = std::fs::remove_file(&ca_path);
    Ok(())
}
