use baton_segment::app::{self, SyncJob};
use baton_segment::cli::{Cli, Command};
use baton_segment::inspect::Inspector;
use baton_segment::logging;
use baton_segment::sandbox::Secret;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(
        cli.log_level,
        cli.log_format.unwrap_or_else(logging::default_format),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<String> {
    let file = cli.file.clone();
    match cli.command {
        Some(Command::ResourceTypes(a)) => Inspector::open(&file)?.resource_types(a.output_format),
        Some(Command::Resources {
            inspect,
            resource_type,
        }) => Inspector::open(&file)?.resources(inspect.output_format, resource_type.as_deref()),
        Some(Command::Entitlements {
            inspect,
            resource_type,
        }) => Inspector::open(&file)?.entitlements(inspect.output_format, resource_type.as_deref()),
        Some(Command::Grants {
            inspect,
            resource_type,
            resource,
            entitlement,
        }) => Inspector::open(&file)?.grants(
            inspect.output_format,
            resource_type.as_deref(),
            resource.as_deref(),
            entitlement.as_deref(),
        ),
        Some(Command::Stats(a)) => Inspector::open(&file)?.stats(a.output_format),
        None => sync(cli).await,
    }
}

async fn sync(cli: Cli) -> anyhow::Result<String> {
    let args = cli.sync;
    // The demo workspace is served by the fake Segment API, in this process, on loopback.
    let demo = if args.demo {
        Some(fakes::segment::FakeSegment::start(fakes::segment::FakeConfig::demo()).await?)
    } else {
        None
    };
    let (base_url, token) = match &demo {
        Some(fake) => (
            fake.base_url(),
            Secret::new(fakes::segment::FakeConfig::demo().token),
        ),
        None => {
            let token = args.token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                anyhow::anyhow!(
                    "no Segment token: pass --token or set BATON_TOKEN to a Public API token (a Workspace Owner \
                     creates one under Settings → Access Management → Tokens), or try --demo"
                )
            })?;
            (args.base_url.clone(), Secret::new(token.trim()))
        }
    };
    app::check_base_url(&base_url)?;
    let job = SyncJob {
        concurrency: args.concurrency as usize,
        http_timeout: Duration::from_secs(args.http_timeout_seconds),
        show_progress: true,
        ..SyncJob::new(base_url, token, cli.file)
    };
    let summary = app::sync(job).await?;
    if let Some(fake) = demo {
        fake.shutdown().await;
    }
    Ok(summary.to_string())
}
