//! `fnbox serve`: load packages and/or a config file, bind the front door, start the pools,
//! serve until SIGINT/SIGTERM, shut down cleanly (exit 0, no process left behind).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use fnbox_engine::{Engine, EngineConfig};
use fnbox_limits::MemoryController;
use fnbox_serve::config::{check_exposure, check_token, parse_listen, DEFAULT_LISTEN};
use fnbox_serve::{FunctionSpec, Registry, ServeFile, Server};
use tokio::signal::unix::{signal, SignalKind};

use crate::{MainError, MemoryModeArg};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Package directories or .zip files to serve (added to those of --config).
    pub packages: Vec<PathBuf>,
    /// Config file: `functions: [{path, max_instances?, reserved_instances?, concurrent_num?,
    /// idle_timeout?}]`, `listen`, `token` (see README, "Serve").
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on: loopback only (127.0.0.0/8, ::1, localhost) unless a token is set
    /// (then any, e.g. a pod's IP); port 0 picks a free port. Default 127.0.0.1:8000, or
    /// `listen` of --config.
    #[arg(long)]
    pub listen: Option<String>,
    /// Directory for fnbox's state, created when missing: the durable queue of asynchronous
    /// invocations (`async.sqlite3`). One fnbox serve per data dir.
    #[arg(long, env = "FNBOX_DATA_DIR", default_value = "./.fnbox")]
    pub data_dir: PathBuf,
    /// Queue of asynchronous invocations shared by several fnbox nodes: a PostgreSQL URL,
    /// `postgres://user:password@host:port/database`. Default `queue` of --config, else the
    /// SQLite file in --data-dir.
    #[arg(long, env = "FNBOX_QUEUE", hide_env_values = true)]
    pub queue: Option<String>,
    /// With --queue: how long an async attempt stays this node's without renewal before
    /// another node takes it over (e.g. `30s`; at least 300ms). Default 30s.
    #[arg(long, value_parser = parse_duration)]
    pub queue_lease: Option<std::time::Duration>,
    /// Delay before the first retry of a failed asynchronous invocation, then doubling (e.g.
    /// `500ms`, `2s`, `1m`); default the platform's 1 min.
    #[arg(long, value_parser = parse_duration)]
    pub async_retry_delay: Option<std::time::Duration>,
    /// Require this token in the X-Auth-Token header of every request.
    #[arg(long, env = "FNBOX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How memory limits are enforced.
    #[arg(long, value_enum, default_value_t = MemoryModeArg::Auto)]
    pub memory_mode: MemoryModeArg,
    /// The `podName` of the instance when fnbox runs one instance per pod (CONTRACT §2), e.g.
    /// the Kubernetes pod's name from the downward API: needs exactly one function with
    /// max_instances 1. Without it, each instance is named `<func_name>-<memory_size>-<8 hex>`.
    #[arg(long, env = "FNBOX_POD_NAME", value_parser = parse_pod_name)]
    pub pod_name: Option<String>,
    #[command(flatten)]
    pub function_config: crate::config_flags::ConfigArgs,
    /// Serve no browser timeline (`/ui`, `/api/*`) and keep no history.
    #[arg(long)]
    pub no_ui: bool,
    /// How long the timeline keeps phases and invocations (e.g. `10m`, `1h`; at most 24h).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub ui_history: std::time::Duration,
    /// Most phases and invocations the timeline keeps.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=fnbox_serve::timeline::model::MAX_MAX_INVOCATIONS as i64), default_value_t = fnbox_serve::timeline::model::DEFAULT_MAX_INVOCATIONS as u32)]
    pub ui_max_invocations: u32,
    #[command(flatten)]
    pub otlp: crate::otel::OtlpArgs,
    #[command(flatten)]
    pub http: crate::http_limits::HttpArgs,
}

/// How often `/metrics`'s async queue depth is sampled.
const ASYNC_DEPTH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// `--pod-name`: what a pod's (or a host's) name may hold, 1 to 253 characters of letters,
/// digits, `-`, `.` and `_`.
fn parse_pod_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!("{s:?} must be 1 to 253 characters long"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(format!(
            "{s:?} may hold only letters, digits, '-', '.' and '_' (a pod's name)"
        ));
    }
    Ok(s.to_string())
}

/// With `--pod-name`, the pod is the instance: one function, at most one instance of it.
fn one_instance_per_pod(registry: &Registry, name: &str) -> Result<(), MainError> {
    let listings: Vec<_> = registry.iter().map(|s| s.listing()).collect();
    let reason = match listings.as_slice() {
        [one] if one.max_instances == 1 => return Ok(()),
        [one] => format!(
            "the pod is the instance: function '{}' needs max_instances 1 (it has {}); set it in function.yaml or the config file",
            one.name, one.max_instances
        ),
        many => format!(
            "the pod is the instance: serve exactly one function (here {}: {})",
            many.len(),
            many.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    Err(MainError::PodName {
        name: name.to_string(),
        reason,
    })
}

/// Longest `--async-retry-delay`: a day.
const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// `--async-retry-delay`: what `humantime` accepts (`500ms`, `2s`, `1m`, `1h 30m`, …), or a
/// bare number of seconds (`90`, `0.5`); more than 0, at most 24 h. clap names the flag and the
/// value in front of the message.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= MAX_RETRY_DELAY.as_secs_f64() => {
            std::time::Duration::from_secs_f64(secs)
        }
        Ok(_) => return Err(format!("{s:?} is out of range (more than 0, at most 24h)")),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration (e.g. 500ms, 2s, 1m): {e}"))?,
    };
    if d.is_zero() || d > MAX_RETRY_DELAY {
        return Err(format!("{s:?} is out of range (more than 0, at most 24h)"));
    }
    Ok(d)
}

fn memory_controller(mode: MemoryModeArg) -> Result<MemoryController, MainError> {
    Ok(match mode {
        MemoryModeArg::Auto => MemoryController::detect(),
        MemoryModeArg::Rss => MemoryController::rss_sampling("--memory-mode rss"),
        MemoryModeArg::Cgroup => MemoryController::cgroup().map_err(MainError::Cgroup)?,
    })
}

/// Settings after merging the command line over the config file.
struct Settings {
    listen: SocketAddr,
    token: Option<String>,
    functions: Vec<FunctionSpec>,
    queue: Option<String>,
    otlp: Option<fnbox_otel::OtlpConfig>,
    telemetry_queue_bytes: Option<usize>,
    http: fnbox_engine::http_serve::HttpLimits,
}

fn settings(args: &ServeArgs) -> Result<Settings, MainError> {
    let file = match &args.config {
        Some(path) => ServeFile::load(path)?,
        None => ServeFile::default(),
    };
    let (listen, listen_origin, listen_value) = match &args.listen {
        Some(v) => (
            parse_listen(v, "--listen")?,
            "--listen".to_string(),
            v.clone(),
        ),
        None => {
            let origin = match &args.config {
                Some(path) => format!("{}: listen", path.display()),
                None => "listen".to_string(),
            };
            let addr = file.listen.unwrap_or(DEFAULT_LISTEN);
            (addr, origin, addr.to_string())
        }
    };
    if let Some(t) = &args.token {
        check_token(t).map_err(MainError::Token)?;
    }
    let token = args.token.clone().or(file.token);
    check_exposure(listen, &listen_origin, &listen_value, token.is_some())?;
    let otlp = args.otlp.resolve(file.otlp.as_ref())?;
    let mut functions = file.functions;
    let flags = args.function_config.flags();
    functions.extend(args.packages.iter().map(|p| FunctionSpec {
        flags: flags.clone(),
        ..FunctionSpec::from_arg(p)
    }));
    if let Some(q) = &args.queue {
        fnbox_serve::config::check_queue_url(q)
            .map_err(|m| MainError::AsyncSetup(format!("--queue: {m}")))?;
    }
    let queue = args.queue.clone().or(file.queue);
    let http = fnbox_serve::http_limits::resolve(&args.http.flags(), file.http.as_ref());
    Ok(Settings {
        listen,
        token,
        functions,
        queue,
        otlp,
        telemetry_queue_bytes: file.telemetry_queue_bytes,
        http,
    })
}

pub async fn serve(args: ServeArgs) -> Result<(), MainError> {
    // From here on SIGINT/SIGTERM are ours: they start the graceful shutdown (a signal that
    // arrives while starting up is kept and handled as soon as serving begins).
    let mut sigterm = signal(SignalKind::terminate()).map_err(MainError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(MainError::Signals)?;
    let settings = settings(&args)?;
    let _extraction = crate::contain::prepare_extraction(&args.data_dir);
    let memory = memory_controller(args.memory_mode)?;
    // What a killed fnbox left (may wait up to 2 s per group for processes to leave): off the
    // async workers.
    let stale = memory.clone();
    let _ = tokio::task::spawn_blocking(move || stale.cleanup_stale()).await;
    let memory_line = memory.describe();
    let (network, network_line) =
        fnbox_engine::NetworkMode::detect(crate::run::network_forced_host().as_deref());
    let (containment, containment_line, _watchdog) = crate::contain::setup(&memory).await;
    let mut config = EngineConfig::new(memory);
    config.network = network;
    config.containment = containment;
    config.host_path = crate::contain::host_path(&config.containment);
    let (otel_echo, otel_lines) = fnbox_otel::output_channel();
    // Unmarked lines go to the exporters only for OTLP logs (as in `fnbox run`): without
    // OTLP, a function printing without pause would pay a marker search and a channel send
    // per line for nothing.
    config.echo = Some(match settings.otlp {
        Some(_) => crate::otel::both(crate::echo::stderr_echo(true), otel_echo),
        None => crate::echo::stderr_echo(true),
    });
    config.pod_name = args.pod_name.clone();
    let freeze_line = config.freeze.describe();
    if let Some(bytes) = settings.telemetry_queue_bytes {
        config.telemetry_queue_bytes = bytes;
    }
    let engine = Engine::new(config);
    // Until the server owns the engine, a failure shuts the engine down before it is returned.
    let started = async {
        let registry = Registry::load(&engine, &settings.functions)?;
        if let Some(name) = &args.pod_name {
            one_instance_per_pod(&registry, name)?;
        }
        // The durable async queue: opened before binding, so a bad data dir fails fast.
        let store = match &settings.queue {
            Some(url) => {
                let mut options = fnbox_async::PgOptions::default();
                if let Some(lease) = args.queue_lease {
                    options.lease = lease;
                }
                fnbox_async::AsyncStore::connect(url, options).await?
            }
            None => fnbox_async::AsyncStore::open(&args.data_dir)?,
        };
        // Bind before any instance starts, so a busy port fails fast and nothing is left running.
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| MainError::Listen {
                addr: settings.listen,
                source,
            })?;
        Ok::<_, MainError>((registry, store, listener))
    };
    let (registry, store, listener) = match started.await {
        Ok(s) => s,
        Err(e) => {
            engine.shutdown(std::time::Duration::from_secs(1)).await;
            return Err(e);
        }
    };
    let counts = store.counts().await.unwrap_or_default();
    let addr = listener.local_addr().map_err(MainError::LocalAddr)?;

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{memory_line}");
    let _ = writeln!(out, "{network_line}");
    let _ = writeln!(out, "{containment_line}");
    let _ = writeln!(out, "{freeze_line}");
    let _ = writeln!(
        out,
        "async invocations: {} ({} queued, {} succeeded, {} failed; {} interrupted by the last stop put back in the queue)",
        store.location(),
        counts.queued + counts.running,
        counts.succeeded,
        counts.failed,
        store.recovered_at_open()
    );
    for served in registry.iter() {
        for line in served.describe() {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(name) = &args.pod_name {
        let _ = writeln!(out, "podName: {name} (one instance per pod)");
    }
    let _ = writeln!(
        out,
        "{}",
        fnbox_serve::http_limits::describe(&settings.http)
    );
    let _ = writeln!(
        out,
        "auth: {}",
        if settings.token.is_some() {
            "every request needs the X-Auth-Token header"
        } else {
            "none (loopback only)"
        }
    );
    drop(out);

    // Exporters: Prometheus always (`GET /metrics`), OTLP when configured.
    let exporters = match crate::otel::start_serve(&engine, &registry, &settings.otlp, otel_lines) {
        Ok(e) => e,
        Err(e) => {
            engine.shutdown(std::time::Duration::from_secs(1)).await;
            return Err(e);
        }
    };
    let async_options = fnbox_serve::AsyncOptions {
        retry_delay: args.async_retry_delay,
    };
    let mut server = Server::new(engine, registry, settings.token)
        .with_http_limits(settings.http)
        .with_metrics(exporters.prometheus())
        .with_async(store, &async_options)
        .map_err(MainError::AsyncSetup)?;
    if !args.no_ui {
        server = server.with_timeline(fnbox_serve::timeline::TimelineConfig {
            window: args.ui_history,
            max_invocations: args.ui_max_invocations as usize,
        });
    }
    if let Err(e) = server.start().await {
        server.stop().await;
        exporters.shutdown(std::time::Duration::from_secs(5)).await;
        return Err(e.into());
    }
    println!(
        "invoke: POST http://{addr}/v2/<project_id>/fgs/functions/<urn>/invocations (FunctionGraph), POST http://{addr}/2015-03-31/functions/<name>/invocations (Lambda)"
    );
    if !args.no_ui {
        println!("timeline: http://{addr}/ui");
    }
    println!("fnbox serve: listening on http://{addr} (Ctrl-C to stop)");

    // The async queue's depth for `/metrics`, sampled off the invoke path; ends with serving.
    let sampling = tokio_util::sync::CancellationToken::new();
    let sampler = server.async_store().cloned().map(|store| {
        let (exporters, stop) = (exporters.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ASYNC_DEPTH_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = every.tick() => {}
                }
                match store.depth_by_function().await {
                    Ok(d) => exporters.set_async_depth(
                        &d.into_iter()
                            .map(|f| (f.function, f.queued, f.running))
                            .collect::<Vec<_>>(),
                    ),
                    Err(e) => tracing::debug!(error = %e, "async queue depth not sampled"),
                }
            }
        })
    });

    let shutdown = async move {
        let which = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        eprintln!("fnbox serve: {which}: shutting down (in-flight invocations finish or time out)");
    };
    let served = server.run(listener, shutdown).await;
    sampling.cancel();
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    served.map_err(MainError::FrontDoor)?;
    // After the engine stopped: the last reports are in; flush the exporters.
    exporters.shutdown(std::time::Duration::from_secs(5)).await;
    eprintln!("fnbox serve: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_with_units_and_bare_seconds_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 90 "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn bad_durations_name_the_value() {
        for bad in ["", "soon", "5x", "ms"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        for out_of_range in ["0", "0s", "-1", "25h", "86401"] {
            let e = parse_duration(out_of_range).unwrap_err();
            assert!(e.contains("out of range"), "{out_of_range}: {e}");
        }
    }
}
