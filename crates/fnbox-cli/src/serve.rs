//! `fnbox serve`: load packages and/or a config file, bind the front door, start the pools,
//! serve until SIGINT/SIGTERM, shut down cleanly (exit 0, no process left behind).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use fnbox_engine::{Engine, EngineConfig};
use fnbox_limits::MemoryController;
use fnbox_serve::config::{check_token, parse_listen, DEFAULT_LISTEN};
use fnbox_serve::{FunctionSpec, Registry, ServeFile, Server};
use tokio::signal::unix::{signal, SignalKind};

use crate::{ExitCode, MemoryModeArg};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Package directories or .zip files to serve (added to those of --config).
    pub packages: Vec<PathBuf>,
    /// Config file: `functions: [{path, max_instances?, reserved_instances?, concurrent_num?,
    /// idle_timeout?}]`, `listen`, `token` (see README, "Serve").
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on: loopback only (127.0.0.0/8, ::1, localhost); port 0 picks a free
    /// port. Default 127.0.0.1:8000, or `listen` of --config.
    #[arg(long)]
    pub listen: Option<String>,
    /// Directory for fnbox's state, created when missing: the durable queue of asynchronous
    /// invocations (`async.sqlite3`). One fnbox serve per data dir.
    #[arg(long, env = "FNBOX_DATA_DIR", default_value = "./.fnbox")]
    pub data_dir: PathBuf,
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
}

/// `500ms`, `2s`, `1m`, `1h`, or a number of seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{s:?} is out of range (more than 0, at most 24h)"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn memory_controller(mode: MemoryModeArg) -> Result<MemoryController, String> {
    Ok(match mode {
        MemoryModeArg::Auto => MemoryController::detect(),
        MemoryModeArg::Rss => MemoryController::rss_sampling("--memory-mode rss"),
        MemoryModeArg::Cgroup => {
            MemoryController::cgroup().map_err(|e| format!("--memory-mode cgroup: {e}"))?
        }
    })
}

/// Settings after merging the command line over the config file.
struct Settings {
    listen: SocketAddr,
    token: Option<String>,
    functions: Vec<FunctionSpec>,
}

fn settings(args: &ServeArgs) -> Result<Settings, String> {
    let file = match &args.config {
        Some(path) => ServeFile::load(path).map_err(|e| e.to_string())?,
        None => ServeFile::default(),
    };
    let listen = match &args.listen {
        Some(v) => parse_listen(v, "--listen").map_err(|e| e.to_string())?,
        None => file.listen.unwrap_or(DEFAULT_LISTEN),
    };
    if let Some(t) = &args.token {
        check_token(t).map_err(|m| format!("--token: {m}"))?;
    }
    let token = args.token.clone().or(file.token);
    let mut functions = file.functions;
    functions.extend(args.packages.iter().map(FunctionSpec::from_arg));
    Ok(Settings {
        listen,
        token,
        functions,
    })
}

pub async fn serve(args: ServeArgs) -> ExitCode {
    // From here on SIGINT/SIGTERM are ours: they start the graceful shutdown (a signal that
    // arrives while starting up is kept and handled as soon as serving begins).
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::Internal;
        }
    };
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage;
        }
    };
    let memory = match memory_controller(args.memory_mode) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage;
        }
    };
    memory.cleanup_stale();
    let memory_line = memory.describe();
    let (network, network_line) =
        fnbox_engine::NetworkMode::detect(crate::run::network_forced_host().as_deref());
    let mut config = EngineConfig::new(memory);
    config.network = network;
    config.host_path = std::env::var("PATH").ok();
    config.echo = Some(crate::echo::stderr_echo(true));
    let engine = Engine::new(config);
    let registry = match Registry::load(&engine, &settings.functions) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            engine.shutdown(std::time::Duration::from_secs(1)).await;
            return ExitCode::Usage;
        }
    };
    // The durable async queue: opened before binding, so a bad data dir fails fast.
    let store = match fnbox_async::AsyncStore::open(&args.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            engine.shutdown(std::time::Duration::from_secs(1)).await;
            return ExitCode::Usage;
        }
    };
    let counts = store.counts().await.unwrap_or_default();
    // Bind before any instance starts, so a busy port fails fast and nothing is left running.
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", settings.listen);
            engine.shutdown(std::time::Duration::from_secs(1)).await;
            return ExitCode::Internal;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot read the bound address: {e}");
            return ExitCode::Internal;
        }
    };

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{memory_line}");
    let _ = writeln!(out, "{network_line}");
    let _ = writeln!(
        out,
        "async invocations: {} ({} queued, {} succeeded, {} failed; {} interrupted by the last stop put back in the queue)",
        std::path::absolute(store.path())
            .unwrap_or_else(|_| store.path().to_path_buf())
            .display(),
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

    let async_options = fnbox_serve::AsyncOptions {
        retry_delay: args.async_retry_delay,
    };
    let server =
        match Server::new(engine, registry, settings.token).with_async(store, &async_options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::Usage;
            }
        };
    if let Err(e) = server.start().await {
        eprintln!("error: {e}");
        server.stop().await;
        return ExitCode::InitFailed;
    }
    println!(
        "invoke: POST http://{addr}/v2/<project_id>/fgs/functions/<urn>/invocations (FunctionGraph), POST http://{addr}/2015-03-31/functions/<name>/invocations (Lambda)"
    );
    println!("fnbox serve: listening on http://{addr} (Ctrl-C to stop)");

    let shutdown = async move {
        let which = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        eprintln!("fnbox serve: {which}: shutting down (in-flight invocations finish or time out)");
    };
    match server.run(listener, shutdown).await {
        Ok(()) => {
            eprintln!("fnbox serve: stopped");
            ExitCode::Ok
        }
        Err(e) => {
            eprintln!("error: the front door failed: {e}");
            ExitCode::Internal
        }
    }
}
