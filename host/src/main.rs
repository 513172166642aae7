use baton_segment::cli::standard_flags::StandardArgs;
use baton_segment::cli::{Cli, Command, ServeArgs, SyncArgs};
use baton_segment::commands::connection::{Connection, SESSION_BYTES, segment_runtime};
use baton_segment::commands::inspect::Inspector;
use baton_segment::commands::provision::{self, Lookup};
use baton_segment::commands::sync::{self as app, SyncJob};
use baton_segment::demo::{self, DemoSegment};
use baton_segment::logging::{self, LogOptions};
use baton_segment::sandbox::Secret;
use baton_segment::sandbox::redact::redact;
use baton_segment::sync::scope::SyncScope;
use baton_segment::telemetry::otlp::{Otel, OtelSettings};
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    // Every error exits 1, as a Baton connector's does (clap's own would be 2); help and the
    // version exit 0.
    // The matches are kept to tell a flag from a variable (a secret given as a flag is warned
    // about).
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    // The OpenTelemetry channel lives on the runtime.
    let _in_runtime = runtime.enter();
    let logging = match start_logging(&cli) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    for warning in baton_segment::cli::secret_flag_warnings(&matches) {
        tracing::warn!("{warning}");
    }
    let result = check_standard_flags(&cli.standard).and_then(|()| runtime.block_on(run(cli)));
    let code = match result {
        Ok(output) if output.is_empty() => ExitCode::SUCCESS,
        Ok(output) => {
            use std::io::Write as _;
            // A reader that went away (`| head`) is not an error.
            match writeln!(std::io::stdout(), "{}", redact(&output)) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    fail(anyhow::anyhow!("writing the output: {e}"))
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => fail(e),
    };
    logging.shutdown();
    code
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {}", redact(&format!("{e:#}")));
    ExitCode::FAILURE
}

/// Logs on stderr, and to the OpenTelemetry collector when one is named.
fn start_logging(cli: &Cli) -> anyhow::Result<logging::Logging> {
    let s = &cli.standard;
    let otel = Otel::start(
        &OtelSettings {
            endpoint: s.otel_collector_endpoint.clone(),
            tls_cert_path: s.otel_collector_endpoint_tls_cert_path.clone(),
            tls_cert: s.otel_collector_endpoint_tls_cert.clone(),
            tls_insecure: s.otel_collector_endpoint_tls_insecure,
            tracing_disabled: s.otel_tracing_disabled,
            logging_disabled: s.otel_logging_disabled,
        },
        "baton-segment-server",
    )?;
    let options = LogOptions {
        level: cli.log_level,
        format: cli.log_format.unwrap_or_else(logging::default_format),
        debug_expires_at: s.debug_expires_at()?,
    };
    Ok(logging::init(&options, otel))
}

/// The standard flags this connector does not support: an operation is an error, a setting
/// gets one line on stderr. Also checks the environment's proxies and CA file up front.
fn check_standard_flags(s: &StandardArgs) -> anyhow::Result<()> {
    let notices = s.notices();
    for line in &notices.ignored {
        eprintln!("{line}");
    }
    if !notices.refused.is_empty() {
        anyhow::bail!("{}", notices.refused.join("\nerror: "));
    }
    baton_segment::net::proxy::Proxies::from_env()?;
    baton_segment::net::trust::Trust::from_env()?;
    if let Some(dir) = &s.c1z_temp_dir
        && !dir.is_dir()
    {
        anyhow::bail!(
            "the specified c1z temp dir does not exist: {} (--c1z-temp-dir / BATON_C1Z_TEMP_DIR)",
            dir.display()
        );
    }
    Ok(())
}

/// What a sync covers, from the standard flags.
fn scope(s: &StandardArgs) -> anyhow::Result<SyncScope> {
    SyncScope::from_flags(
        &s.sync_resource_types,
        &s.sync_resources,
        s.skip_entitlements_and_grants,
        s.skip_grants,
    )
    .map_err(|e| anyhow::anyhow!("--sync-resources: {e}"))
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
            baton_segment::health::probe(args.at.socket(), &args.path(), args.timeout()).await
        }
        Some(Command::Capabilities) => capabilities().await,
        Some(Command::Config) => Ok(baton_segment::commands::capabilities::config_schema(
            baton_segment::cli::DEFAULT_BASE_URL,
            SESSION_BYTES as u64,
        )
        .pretty()),
        None if cli.service.requested() => run_service(cli).await,
        None if cli.provision.requested() || cli.provision.dry_run => run_provisioning(cli).await,
        None => sync(cli).await,
    }
}

/// Where the component reaches Segment: the configured API, or with `--demo` the demo
/// workspace served in this process, on loopback.
async fn connection(
    args: &SyncArgs,
    standard: &StandardArgs,
) -> anyhow::Result<(Connection, Option<DemoSegment>)> {
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
    // Baton's --workers N (N > 0) is the number of calls at once, unless --concurrency says.
    let workers = standard
        .workers
        .filter(|w| *w > 0)
        .map(|w| w.min(64) as u16);
    connection.concurrency = args
        .concurrency
        .or(workers)
        .unwrap_or(baton_segment::cli::DEFAULT_CONCURRENCY) as usize;
    connection.http_timeout = Duration::from_secs(args.http_timeout_seconds);
    connection.request_budget = (args.request_budget > 0).then_some(args.request_budget);
    if let Some(max) = standard.session_store_maximum_size {
        connection.session_bytes = usize::try_from(max).unwrap_or(usize::MAX);
    }
    Ok((connection, demo))
}

/// `capabilities`: what the bundled connector declares, as Baton prints it (the component
/// is asked; no Segment request is made).
async fn capabilities() -> anyhow::Result<String> {
    let runtime = segment_runtime(2)?;
    let connection = Connection::to(baton_segment::cli::DEFAULT_BASE_URL, Secret::new(""))?;
    let metadata = baton_segment::service::hello::load_metadata(&runtime, &connection).await?;
    let caps = metadata.capabilities.unwrap_or_default();
    Ok(baton_segment::commands::capabilities::capabilities(&caps).pretty())
}

async fn sync(cli: Cli) -> anyhow::Result<String> {
    let scope = scope(&cli.standard)?;
    let (connection, demo) = connection(&cli.sync, &cli.standard).await?;
    let file = cli.file.clone();
    let job = SyncJob {
        show_progress: true,
        scope,
        keep_syncs: cli.sync.keep_sync_count.into(),
        resume: !cli.sync.no_resume,
        deadline: cli.sync.sync_deadline,
        ..SyncJob::with(connection, cli.file)
    };
    // Ctrl-C or SIGTERM stops the sync: its work and the connector's session store stay
    // (private) for the next sync of the file to resume; the output is replaced only by a
    // finished sync.
    let summary = app::sync_until(job, baton_segment::service::shutdown_signal()).await?;
    if let Some(server) = demo {
        server.shutdown().await;
    }
    // As Baton connectors log it (log pipelines and the collector see it; stdout has the
    // summary).
    tracing::info!(
        file = %file.display(),
        sync_id = %summary.sync_id,
        resources = summary.resources(),
        entitlements = summary.entitlements,
        grants = summary.grants,
        "sync complete"
    );
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
    let (connection, demo) = connection(&cli.sync, &cli.standard).await?;
    let mut opts = ServiceOptions::new(id, Secret::new(secret), connection);
    opts.host_id = s.host_id.clone();
    opts.provisioning = s.provisioning;
    opts.task_concurrency = s.task_concurrency.into();
    opts.scope = scope(&cli.standard)?;
    opts.skip_full_sync = cli.standard.skip_full_sync;
    opts.temp_dir = cli.standard.c1z_temp_dir.clone();
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
        let mut op = provision::create_account(
            p.create_account_email.as_deref(),
            p.create_account_login.as_deref(),
            p.create_account_profile.as_deref(),
        )?;
        // --create-account-resource-type: the resource type of the account to create.
        if let (baton_segment::engine::contract::Operation::CreateAccount(info), Some(t)) = (
            &mut op,
            cli.standard
                .create_account_resource_type
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty()),
        ) {
            info.resource_type = t.to_string();
        }
        op
    } else {
        anyhow::bail!(
            "--dry-run needs an operation: --grant-entitlement, --revoke-grant, --create-account-email or --delete-resource"
        );
    };
    let (connection, demo) = connection(&cli.sync, &cli.standard).await?;
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
