//! `segment-fake`: the fake Twilio Segment Public API as a standalone server.
//!
//! Prints `segment-fake listening on http://127.0.0.1:PORT (token: TOKEN)` as the first
//! line of stdout, then serves until Ctrl-C.

use clap::Parser;
use fakes::segment::{FakeConfig, FakeSegment, GenSpec, Plan, ReadRate, Workspace};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "segment-fake",
    about = "A faithful fake of the Twilio Segment Public API on loopback"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The bearer token to accept.
    #[arg(long, default_value = "demo-token")]
    token: String,
    /// Serve a generated workspace with this seed instead of the demo workspace.
    #[arg(long)]
    generate_seed: Option<u64>,
    /// Generated users.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Generated user groups.
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// Generated pending invites.
    #[arg(long, default_value_t = 10)]
    invites: usize,
    /// Generated sources.
    #[arg(long, default_value_t = 20)]
    sources: usize,
    /// Generated warehouses.
    #[arg(long, default_value_t = 3)]
    warehouses: usize,
    /// Generated functions.
    #[arg(long, default_value_t = 10)]
    functions: usize,
    /// Generated spaces.
    #[arg(long, default_value_t = 2)]
    spaces: usize,
    /// Plan without User Groups (Team tier): /groups… answers 400.
    #[arg(long)]
    no_groups: bool,
    /// Plan without Spaces: /spaces answers 404.
    #[arg(long)]
    no_spaces: bool,
    /// Plan without Warehouses: /warehouses answers 403.
    #[arg(long)]
    no_warehouses: bool,
    /// Workspace without Functions: /functions answers 403.
    #[arg(long)]
    no_functions: bool,
    /// Latency added to every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Writes allowed per window per token and write operation (e.g. POST /invites).
    #[arg(long, default_value_t = 60)]
    write_limit: u32,
    /// Length of the write window in seconds.
    #[arg(long, default_value_t = 60)]
    write_window_secs: u64,
    /// Optional read limit per 60 s window.
    #[arg(long)]
    read_limit: Option<u32>,
    /// Token-bucket read limit: requests per second (replaces --read-limit).
    #[arg(long)]
    read_rate: Option<f64>,
    /// Burst of the token-bucket read limit.
    #[arg(long, default_value_t = 10)]
    read_burst: u32,
    /// Close each connection after its answer (default: keep connections alive, as Segment does).
    #[arg(long)]
    close_connections: bool,
    /// Behave like a plain HTTP/1.1 server: Nagle on (no TCP_NODELAY), head and body written
    /// separately.
    #[arg(long)]
    plain_writes: bool,
    /// `GET /users` items include `permissions`.
    #[arg(long)]
    list_users_with_permissions: bool,
    /// Accepted `resourceType` values of GET /functions (comma-separated).
    #[arg(long, value_delimiter = ',')]
    function_types: Option<Vec<String>>,
    /// Write the served workspace as JSON to this file and continue.
    #[arg(long)]
    dump_workspace: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let workspace = match args.generate_seed {
        Some(seed) => Workspace::generate(
            seed,
            GenSpec {
                users: args.users,
                groups: args.groups,
                invites: args.invites,
                sources: args.sources,
                warehouses: args.warehouses,
                functions: args.functions,
                spaces: args.spaces,
            },
        ),
        None => Workspace::demo(),
    };
    if let Some(path) = &args.dump_workspace {
        std::fs::write(path, serde_json::to_vec_pretty(&workspace)?)?;
    }
    let mut cfg = FakeConfig::new(&args.token, workspace);
    cfg.plan = Plan {
        groups: !args.no_groups,
        spaces: !args.no_spaces,
        warehouses: !args.no_warehouses,
        functions: !args.no_functions,
    };
    cfg.latency = Duration::from_millis(args.latency_ms);
    cfg.write_limit = args.write_limit;
    cfg.write_window = Duration::from_secs(args.write_window_secs.max(1));
    cfg.read_limit = args.read_limit.map(|n| (n, Duration::from_secs(60)));
    cfg.read_rate = args
        .read_rate
        .map(|per_second| ReadRate::new(per_second, args.read_burst));
    cfg.keep_alive = !args.close_connections;
    cfg.nodelay = !args.plain_writes;
    cfg.list_users_includes_permissions = args.list_users_with_permissions;
    if let Some(types) = args.function_types {
        cfg.accepted_function_types = types
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
    }
    let token = cfg.token.clone();
    let fake = FakeSegment::start_on(cfg, args.listen).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "segment-fake listening on {} (token: {token})",
            fake.base_url()
        )?;
        out.flush()?;
    }
    tokio::signal::ctrl_c().await?;
    fake.shutdown().await;
    Ok(())
}
