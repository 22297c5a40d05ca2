//! `fnbox run`: one instance, N invocations, the platform's report lines (FunctionGraph's or
//! Lambda's, by the package's dialect: `platform_lines.rs`).

use std::sync::Arc;

use fnbox_engine::{Answer, AnswerTx, Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;

use crate::platform_lines::PlatformLines;
use crate::{MainError, MemoryModeArg, RunArgs};

/// Runs `args.times` invocations in one instance (a fresh one after a fault). A failed
/// invocation does not stop the loop; an init failure or an engine error does. Every error is
/// returned, in order, for `main` to print.
pub async fn run(args: RunArgs) -> Result<(), MainError> {
    let _extraction = crate::contain::prepare_extraction(&args.data_dir);
    let package = Arc::new(fnbox_package::load_with(
        &args.package,
        &args.config.flags(),
    )?);
    for note in &package.notes {
        eprintln!("note: {note}");
    }
    let otlp = args.otlp.resolve(None)?;
    let event = match (&args.event, &args.event_file) {
        (Some(e), _) => bytes::Bytes::from(e.clone()),
        (None, Some(path)) => match std::fs::read(path) {
            Ok(b) => bytes::Bytes::from(b),
            Err(source) => {
                return Err(MainError::EventFile {
                    path: path.clone(),
                    source,
                })
            }
        },
        (None, None) => bytes::Bytes::from_static(b"{}"),
    };
    let memory = match args.memory_mode {
        MemoryModeArg::Auto => MemoryController::detect(),
        MemoryModeArg::Rss => MemoryController::rss_sampling("--memory-mode rss"),
        MemoryModeArg::Cgroup => MemoryController::cgroup().map_err(MainError::Cgroup)?,
    };
    // What a killed fnbox left (may wait up to 2 s per group for processes to leave): off the
    // async workers.
    let stale = memory.clone();
    let _ = tokio::task::spawn_blocking(move || stale.cleanup_stale()).await;
    eprintln!("{}", memory.describe());
    let (network, network_line) =
        fnbox_engine::NetworkMode::detect(crate::run::network_forced_host().as_deref());
    eprintln!("{}", package_network_line(&package, &network, network_line));
    let (containment, containment_line, _watchdog) = crate::contain::setup(&memory).await;
    eprintln!("{containment_line}");
    let mut config = EngineConfig::new(memory);
    config.network = network;
    config.containment = containment;
    config.host_path = crate::contain::host_path(&config.containment);
    config.echo = Some(crate::echo::stderr_echo(false));
    if let Some(line) = freeze_line(&package, &config) {
        eprintln!("{line}");
    }
    let (otel_echo, otel_lines) = fnbox_otel::output_channel();
    if otlp.is_some() {
        config.echo = config.echo.map(|e| crate::otel::both(e, otel_echo));
    }
    let engine = Engine::new(config);
    let exporters = crate::otel::start_run(&engine, &package, otlp, otel_lines)?;
    let function = Function::new(
        engine.clone(),
        package.clone(),
        fnbox_serve::dialect_for(&package),
    )?;
    if let Some(note) = function.launch_note() {
        eprintln!("note: {note}");
    }
    if let Some(mode) = function.restore_mode() {
        eprintln!("restore: {}", mode.describe());
    }

    let lines = PlatformLines::for_package(&package);
    let mut errors: Vec<MainError> = Vec::new();
    let mut instance = None;
    for _ in 0..args.times {
        let req = InvokeRequest::sync(event.clone());
        let inst = match &instance {
            Some(i) => Arc::clone(i),
            None => {
                let watch = lines.watch_init(&engine);
                match function.start_instance(Some(req.request_id.clone())).await {
                    Ok(i) => {
                        for line in watch.lines(i.pod_name()) {
                            eprintln!("{line}");
                        }
                        instance = Some(i.clone());
                        i
                    }
                    Err(source) => {
                        errors.push(MainError::Init {
                            function: package.config.func_name.clone(),
                            source,
                        });
                        break;
                    }
                }
            }
        };
        eprintln!("{}", lines.start(&req.request_id));
        // The result is shown as soon as the runtime answered, as the platform answers its
        // caller (CONTRACT §3 step 3); the report line follows when the extensions are done.
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<Answer>();
        let run = inst.invoke_answering(
            req,
            AnswerTx::new(move |a| {
                let _ = answer_tx.send(a);
            }),
        );
        let show = async {
            let answer = answer_rx.await.ok()?;
            Some((show_answer(&answer), answer))
        };
        let (outcome, shown) = tokio::join!(run, show);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                errors.push(e.into());
                break;
            }
        };
        let m = outcome.metrics;
        let init_duration_ms = shown.as_ref().and_then(|(_, a)| a.init_duration_ms);
        if let Some((shown, answer)) = shown {
            if let Err(failure) = shown {
                errors.push(failure.into());
            }
            if let InvokeResult::Fault(f) = &outcome.result {
                instance = None;
                if !matches!(answer.result, InvokeResult::Fault(_)) {
                    eprintln!(
                        "warning: request '{}' was answered, then the instance failed: {}: {}",
                        outcome.request_id,
                        f.error_type(),
                        f.message
                    );
                }
            }
        }
        for line in lines.finish(&outcome.request_id, &m, init_duration_ms) {
            eprintln!("{line}");
        }
    }
    if let Some(i) = instance.take() {
        i.shutdown().await;
    }
    engine.shutdown(std::time::Duration::from_secs(3)).await;
    if let Some(x) = exporters {
        x.shutdown(std::time::Duration::from_secs(5)).await;
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(MainError::Several(errors)),
    }
}

/// Shows the caller's answer (see [`crate::result::show`]); a fault as its error body.
fn show_answer(answer: &Answer) -> Result<(), crate::InvocationFailure> {
    match &answer.result {
        InvokeResult::Ok(body) => crate::result::show(&answer.request_id, body, false),
        InvokeResult::HandlerError(body) => crate::result::show(&answer.request_id, body, true),
        InvokeResult::Fault(f) => {
            let body = fnbox_wire::fg::ErrorBody::new(f.error_type(), f.message.clone());
            let body = serde_json::to_vec(&body).unwrap_or_default();
            crate::result::show(&answer.request_id, &body, true)
        }
    }
}

/// The start-up line about the network: the engine's mode, unless the package itself asks for
/// the host network (`network: host` in function.yaml), which then is what its instances get.
fn package_network_line(
    package: &fnbox_package::Package,
    detected: &fnbox_engine::NetworkMode,
    detected_line: String,
) -> String {
    if package.config.network == fnbox_package::Network::Host
        && *detected == fnbox_engine::NetworkMode::Isolated
    {
        let file = package
            .config_file
            .as_ref()
            .map_or_else(|| "function.yaml".to_string(), |f| f.display().to_string());
        return format!(
            "network: host (`network: host` in {file}: the instance shares the host's network)"
        );
    }
    detected_line
}

/// `Some("FNBOX_NETWORK=host")` when the environment asks for the host network (no
/// per-instance network namespaces), for `NetworkMode::detect`.
pub(crate) fn network_forced_host() -> Option<String> {
    match std::env::var("FNBOX_NETWORK") {
        Ok(v) if v.eq_ignore_ascii_case("host") => Some(format!("FNBOX_NETWORK={v}")),
        _ => None,
    }
}

/// The start-up line saying how idle Lambda instances are frozen (nothing for packages that
/// are never frozen, i.e. FunctionGraph's).
fn freeze_line(package: &fnbox_package::Package, config: &EngineConfig) -> Option<String> {
    match (package.config.dialect, package.config.freeze) {
        (fnbox_package::Dialect::Lambda, true) => Some(config.freeze.describe()),
        (fnbox_package::Dialect::Lambda, false) => {
            Some("freeze (Lambda): off (freeze: false in function.yaml)".to_string())
        }
        _ => None,
    }
}
