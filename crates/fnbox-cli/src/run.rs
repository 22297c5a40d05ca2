//! `fnbox run`: one instance, N invocations, FunctionGraph-style report lines.

use std::sync::Arc;

use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_wire::fg::{finish_invoke_line, start_invoke_line};

use crate::{MainError, MemoryModeArg, RunArgs};

/// Runs `args.times` invocations in one instance (a fresh one after a fault). A failed
/// invocation does not stop the loop; an init failure or an engine error does. Every error is
/// returned, in order, for `main` to print.
pub async fn run(args: RunArgs) -> Result<(), MainError> {
    let package = Arc::new(fnbox_package::load(&args.package)?);
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
    memory.cleanup_stale();
    eprintln!("{}", memory.describe());
    let (network, network_line) =
        fnbox_engine::NetworkMode::detect(crate::run::network_forced_host().as_deref());
    eprintln!("{network_line}");
    let mut config = EngineConfig::new(memory);
    config.network = network;
    config.host_path = std::env::var("PATH").ok();
    config.echo = Some(crate::echo::stderr_echo(false));
    let engine = Engine::new(config);
    let function = Function::new(
        engine.clone(),
        package.clone(),
        fnbox_lambda::dialect_for(package.config.dialect),
    )?;

    let mut errors: Vec<MainError> = Vec::new();
    let mut instance = None;
    for _ in 0..args.times {
        let req = InvokeRequest::sync(event.clone());
        let inst = match &instance {
            Some(i) => Arc::clone(i),
            None => match function.start_instance(Some(req.request_id.clone())).await {
                Ok(i) => {
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
            },
        };
        eprintln!("{}", start_invoke_line(&req.request_id, "latest"));
        let outcome = match inst.invoke(req).await {
            Ok(o) => o,
            Err(e) => {
                errors.push(e.into());
                break;
            }
        };
        let m = outcome.metrics;
        let shown = match &outcome.result {
            InvokeResult::Ok(body) => crate::result::show(&outcome.request_id, body, false),
            InvokeResult::HandlerError(body) => {
                crate::result::show(&outcome.request_id, body, true)
            }
            InvokeResult::Fault(f) => {
                instance = None;
                let body = serde_json::to_vec(&f.error_body()).unwrap_or_default();
                crate::result::show(&outcome.request_id, &body, true)
            }
        };
        if let Err(failure) = shown {
            errors.push(failure.into());
        }
        eprintln!(
            "{}",
            finish_invoke_line(
                &outcome.request_id,
                m.duration_ms,
                m.billed_duration_ms,
                m.memory_used_mb,
                m.memory_size_mb
            )
        );
    }
    if let Some(i) = instance.take() {
        i.shutdown().await;
    }
    engine.shutdown(std::time::Duration::from_secs(3)).await;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(MainError::Several(errors)),
    }
}

/// `Some("FNBOX_NETWORK=host")` when the environment asks for the host network (no
/// per-instance network namespaces), for `NetworkMode::detect`.
pub(crate) fn network_forced_host() -> Option<String> {
    match std::env::var("FNBOX_NETWORK") {
        Ok(v) if v.eq_ignore_ascii_case("host") => Some(format!("FNBOX_NETWORK={v}")),
        _ => None,
    }
}
