//! `fnbox run`: one instance, N invocations, FunctionGraph-style report lines.

use std::io::Write;
use std::sync::Arc;

use fnbox_engine::{Answer, AnswerTx, Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;

use crate::{ExitCode, MemoryModeArg, RunArgs};

pub async fn run(args: RunArgs) -> ExitCode {
    let package = match fnbox_package::load(&args.package) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage;
        }
    };
    let event = match (&args.event, &args.event_file) {
        (Some(e), _) => bytes::Bytes::from(e.clone()),
        (None, Some(path)) => match std::fs::read(path) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => {
                eprintln!("error: cannot read event file {}: {e}", path.display());
                return ExitCode::Usage;
            }
        },
        (None, None) => bytes::Bytes::from_static(b"{}"),
    };
    let memory = match args.memory_mode {
        MemoryModeArg::Auto => MemoryController::detect(),
        MemoryModeArg::Rss => MemoryController::rss_sampling("--memory-mode rss"),
        MemoryModeArg::Cgroup => match MemoryController::cgroup() {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: --memory-mode cgroup: {e}");
                return ExitCode::Usage;
            }
        },
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
    let function = match Function::new(
        engine.clone(),
        package.clone(),
        fnbox_serve::dialect_for(&package),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage;
        }
    };

    let mut code = ExitCode::Ok;
    let mut instance = None;
    let mut stdout = std::io::stdout().lock();
    for _ in 0..args.times {
        let req = InvokeRequest::sync(event.clone());
        let inst = match &instance {
            Some(i) => Arc::clone(i),
            None => match function.start_instance(Some(req.request_id.clone())).await {
                Ok(i) => {
                    instance = Some(i.clone());
                    i
                }
                Err(e) => {
                    eprintln!("error: function '{}' {e}", package.config.func_name);
                    code = ExitCode::InitFailed;
                    break;
                }
            },
        };
        eprintln!("Start invoke request '{}', version: latest", req.request_id);
        // The result is printed as soon as the runtime answered, as the platform answers its
        // caller (CONTRACT §3 step 3); the report line follows when the extensions are done.
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<Answer>();
        let run = inst.invoke_answering(
            req,
            AnswerTx::new(move |a| {
                let _ = answer_tx.send(a);
            }),
        );
        let print = async {
            let answer = answer_rx.await.ok()?;
            let failed = print_result(&mut stdout, &answer);
            Some((answer, failed))
        };
        let (outcome, printed) = tokio::join!(run, print);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::Internal;
                break;
            }
        };
        if let Some((_, true)) = printed {
            code = ExitCode::FunctionFailed;
        }
        if let InvokeResult::Fault(f) = &outcome.result {
            if matches!(printed, Some((ref a, _)) if !matches!(a.result, InvokeResult::Fault(_))) {
                eprintln!(
                    "warning: request '{}' was answered, then the instance failed: {}: {}",
                    outcome.request_id,
                    f.error_type(),
                    f.message
                );
            }
            instance = None;
        }
        let m = outcome.metrics;
        eprintln!(
            "Finish invoke request '{}', duration: {:.3}ms, billing duration: {}ms, memory used: {:.3}MB, billing memory: {}MB",
            outcome.request_id, m.duration_ms, m.billed_duration_ms, m.memory_used_mb, m.memory_size_mb
        );
    }
    if let Some(i) = instance.take() {
        i.shutdown().await;
    }
    engine.shutdown(std::time::Duration::from_secs(3)).await;
    code
}

/// Prints the caller's answer: the result on stdout exactly as returned, a failure on stderr.
/// Returns whether the invocation failed.
fn print_result(stdout: &mut impl Write, answer: &Answer) -> bool {
    let failed = match &answer.result {
        InvokeResult::Ok(body) => {
            let _ = stdout.write_all(body);
            false
        }
        InvokeResult::HandlerError(body) => {
            let _ = stdout.write_all(body);
            eprintln!(
                "error: request '{}' failed: {}",
                answer.request_id,
                describe_error_body(body)
            );
            true
        }
        InvokeResult::Fault(f) => {
            let body = fnbox_wire::fg::ErrorBody::new(f.error_type(), f.message.clone());
            let _ = stdout.write_all(&serde_json::to_vec(&body).unwrap_or_default());
            eprintln!(
                "error: request '{}' failed: {}: {}",
                answer.request_id,
                f.error_type(),
                f.message
            );
            true
        }
    };
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
    failed
}

fn describe_error_body(body: &[u8]) -> String {
    match serde_json::from_slice::<fnbox_wire::fg::ErrorBody>(body) {
        Ok(b) if !b.error_type.is_empty() || !b.error_message.is_empty() => {
            format!("{}: {}", b.error_type, b.error_message)
        }
        _ => String::from_utf8_lossy(body).into_owned(),
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
