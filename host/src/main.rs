use baton_segment::cli::{Cli, Command, ServeArgs, SyncArgs};
use baton_segment::commands::connection::{Connection, segment_runtime};
use baton_segment::commands::inspect::Inspector;
use baton_segment::commands::provision::{self, Lookup};
use baton_segment::commands::sync::{self as app, SyncJob};
use baton_segment::demo::{self, DemoSegment};
use baton_segment::logging;
use baton_segment::sandbox::Secret;
use baton_segment::sandbox::redact::redact;
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    logging::init(
        cli.log_level,
        cli.log_format.unwrap_or_else(logging::default_format),
    );
    for warning in baton_segment::cli::secret_flag_warnings(&matches) {
        tracing::warn!("{warning}");
    }
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
                println!("{}", redact(&output));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {}", redact(&format!("{e:#}")));
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
        Some(Command::Serve(args)) => run_serve(args).await,
        Some(Command::HealthCheck(args)) => {
            baton_segment::health::probe(
                args.at.socket(),
                &args.path,
                Duration::from_secs(args.timeout_seconds.max(1)),
            )
            .await
        }
        None if cli.service.requested() => run_service(cli).await,
        None if cli.provision.requested() || cli.provision.dry_run => run_provisioning(cli).await,
        None => sync(cli).await,
    }
}

/// Where the component reaches Segment: the configured API, or with `--demo` the demo
/// workspace served in this process, on loopback.
async fn connection(args: &SyncArgs) -> anyhow::Result<(Connection, Option<DemoSegment>)> {
    let demo = if args.demo {
        Some(DemoSegment::start().await?)
    } else {
        None
    };
    let (base_url, token) = match &demo {
        Some(server) => (server.base_url(), Secret::new(demo::TOKEN)),
        None => {
            let token = args.token.clone().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                anyhow::anyhow!(
                    "no Segment token: pass --token or set BATON_TOKEN to a Public API token (a Workspace Owner \
                     creates one under Settings → Access Management → Tokens), or try --demo"
                )
            })?;
            (args.base_url.clone(), Secret::new(token.trim()))
        }
    };
    let mut connection = Connection::to(&base_url, token)?;
    connection.concurrency = args.concurrency as usize;
    connection.http_timeout = Duration::from_secs(args.http_timeout_seconds);
    connection.request_budget = (args.request_budget > 0).then_some(args.request_budget);
    Ok((connection, demo))
}

async fn sync(cli: Cli) -> anyhow::Result<String> {
    let (connection, demo) = connection(&cli.sync).await?;
    let file = cli.file.clone();
    let job = SyncJob {
        show_progress: true,
        keep_syncs: cli.sync.keep_sync_count.into(),
        resume: !cli.sync.no_resume,
        deadline: cli.sync.sync_deadline,
        ..SyncJob::with(connection, cli.file)
    };
    // Ctrl-C or SIGTERM drops the sync, which removes its temporary files; the output is
    // replaced only by a finished sync.
    let summary = tokio::select! {
        summary = app::sync(job) => summary?,
        _ = baton_segment::service::shutdown_signal() => anyhow::bail!(
            "interrupted before the sync finished; {} was left as it was",
            file.display()
        ),
    };
    if let Some(server) = demo {
        server.shutdown().await;
    }
    Ok(summary.to_string())
}

/// Multi-tenant mode: every tenant of the tenants file, each in its own sandbox, until Ctrl-C or
/// SIGTERM (or one round with `--once`).
async fn run_serve(args: ServeArgs) -> anyhow::Result<String> {
    use baton_segment::serve::{self, ServeOptions, config, policy::TenantPolicy};
    let policy = TenantPolicy::new(
        args.tenant_secrets_dir.as_deref(),
        args.tenant_env_prefix.as_deref(),
        args.output_root.as_deref(),
        &args.tenant_allow_addresses,
    )?;
    let tenants = config::load(&args.tenants, &policy)?;
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir
            .or_else(baton_segment::engine::cache::default_dir)
    };
    let health = args.health.address();
    let count = tenants.len();
    let opts = ServeOptions {
        tenants,
        once: args.once,
        connector: args.connector,
        cache_dir,
        health,
        compile_timeout: serve::COMPILE_TIMEOUT,
    };
    let report = serve::run(opts, baton_segment::service::shutdown_signal()).await?;
    if args.once && !report.failures.is_empty() {
        let lines: Vec<String> = report
            .failures
            .iter()
            .map(|(t, e)| format!("  {t}: {e}"))
            .collect();
        anyhow::bail!(
            "{} of {count} tenants failed:\n{}",
            report.failures.len(),
            lines.join("\n")
        );
    }
    Ok(if args.once {
        format!("{count} tenants synced")
    } else {
        String::new()
    })
}

/// Service mode (see docs/service-mode.md): a daemon taking tasks from ConductorOne until
/// Ctrl-C or SIGTERM.
async fn run_service(cli: Cli) -> anyhow::Result<String> {
    use baton_segment::service::{self, ServiceOptions, auth::Credentials};
    let s = &cli.service;
    let id = s.client_id.clone().unwrap_or_default();
    let secret = s.client_secret.clone().unwrap_or_default();
    // Malformed credentials are reported before anything starts.
    Credentials::parse(&id, &secret, None)?;
    let (connection, demo) = connection(&cli.sync).await?;
    let mut opts = ServiceOptions::new(id, Secret::new(secret), connection);
    opts.host_id = s.host_id.clone();
    opts.provisioning = s.provisioning;
    opts.task_concurrency = s.task_concurrency.into();
    let opts = opts.with_environment();
    let health = if let Some(addr) = s.health.address() {
        let (addr, task) = baton_segment::health::serve(addr, opts.health.clone(), None).await?;
        tracing::info!("health checks on http://{addr}/health, /ready and /live");
        Some(task)
    } else {
        None
    };
    let result = service::run(opts, service::shutdown_signal()).await;
    if let Some(task) = health {
        task.abort();
    }
    if let Some(server) = demo {
        server.shutdown().await;
    }
    result.map(|()| String::new())
}

/// A one-shot provisioning operation (or, with `--dry-run`, its plan).
async fn run_provisioning(cli: Cli) -> anyhow::Result<String> {
    let p = &cli.provision;
    let operation = if let Some(entitlement) = &p.grant_entitlement {
        let principal = p.grant_principal.as_deref().unwrap_or_default();
        let principal_type = p.grant_principal_type.as_deref().unwrap_or_default();
        Lookup::open(&cli.file)?.grant(entitlement, principal, principal_type)?
    } else if let Some(grant) = &p.revoke_grant {
        Lookup::open(&cli.file)?.revoke(grant)?
    } else if let Some(id) = &p.delete_resource {
        Lookup::open(&cli.file)?
            .delete(id, p.delete_resource_type.as_deref().unwrap_or_default())?
    } else if p.create_account_email.is_some()
        || p.create_account_login.is_some()
        || p.create_account_profile.is_some()
    {
        provision::create_account(
            p.create_account_email.as_deref(),
            p.create_account_login.as_deref(),
            p.create_account_profile.as_deref(),
        )?
    } else {
        anyhow::bail!(
            "--dry-run needs an operation: --grant-entitlement, --revoke-grant, --create-account-email or --delete-resource"
        );
    };
    let (connection, demo) = connection(&cli.sync).await?;
    let runtime = segment_runtime(2)?;
    let result = if p.dry_run {
        provision::plan(&runtime, &connection, &operation)
            .await
            .map(|steps| provision::render_plan(&operation, &steps))
    } else {
        provision::execute(&runtime, &connection, &operation)
            .await
            .map(|outcome| {
                format!(
                    "{}: {}",
                    provision::describe_operation(&operation),
                    outcome.describe()
                )
            })
            .map_err(anyhow::Error::from)
    };
    if let Some(server) = demo {
        server.shutdown().await;
    }
    result
}
