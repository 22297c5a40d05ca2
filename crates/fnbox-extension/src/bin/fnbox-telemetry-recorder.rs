//! `fnbox-telemetry-recorder`: a FunctionGraph telemetry extension that appends everything it
//! receives to a JSON-lines file, for looking at (and testing) what a platform delivers.
//!
//! Started by an `extension*.sh` launcher as `exec fnbox-telemetry-recorder "$0"`: the first
//! argument is the launcher's path, whose file name is the name it registers under.
//!
//! Environment (in fnbox, set these through the function's `user_data`: extensions get an
//! explicit environment, not the caller's):
//! - `EXTENSION_API_ADDR`: set by the platform;
//! - `FNBOX_RECORDER_INVOKE_PORT` (default 8081), `FNBOX_RECORDER_TELEMETRY_PORT` (default 8082);
//! - `FNBOX_TELEMETRY_OUT`: output file, default `/tmp/fnbox-telemetry-<pid>.jsonl`.
//!
//! Each line of the file is one telemetry event exactly as received (only whitespace between
//! tokens is removed, so a pretty-printed event still fits on one line), or, per invocation push,
//! `{"name":"extension.invoke","traceId":…,"invokedFunctionUrn":…}`. The file is flushed after
//! every batch. Stdout gets `[Extension] registered as <name>` and `[Extension] received <n>
//! events`, which the platform turns into `extension` telemetry events.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use fnbox_extension::events::names;
use fnbox_extension::{
    launcher_name_from_args, Extension, ExtensionConfig, ExtensionError, Stream,
};
use serde_json::value::RawValue;
use serde_json::Value;

/// Prefix of the line printed per batch; see [`only_our_echoes`].
const RECEIVED: &str = "[Extension] received ";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fnbox-telemetry-recorder: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("[Extension] error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum Failure {
    Extension(ExtensionError),
    Setup(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Extension(e) => e.fmt(f),
            Failure::Setup(s) => f.write_str(s),
        }
    }
}

async fn run() -> Result<(), Failure> {
    // Everything that can be wrong with the environment is reported before the file is created.
    let name = launcher_name_from_args().map_err(Failure::Extension)?;
    let config = ExtensionConfig::from_env().map_err(Failure::Extension)?;
    let invoke_port = port_from_env("FNBOX_RECORDER_INVOKE_PORT", 8081)?;
    let telemetry_port = port_from_env("FNBOX_RECORDER_TELEMETRY_PORT", 8082)?;
    let out = std::env::var_os("FNBOX_TELEMETRY_OUT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(format!("/tmp/fnbox-telemetry-{}.jsonl", std::process::id()))
        });
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .map_err(|e| Failure::Setup(format!("cannot open {}: {e}", out.display())))?;
    eprintln!("fnbox-telemetry-recorder: recording to {}", out.display());
    let recorder = Arc::new(Recorder {
        file: Mutex::new(file),
        out,
    });

    let on_invoke = recorder.clone();
    let on_batch = recorder.clone();
    let on_stop = recorder.clone();
    let registered_name = name.clone();
    Extension::builder(name)
        .config(config)
        .invoke_address(format!("127.0.0.1:{invoke_port}"))
        .on_invoke(move |push| {
            let recorder = on_invoke.clone();
            async move {
                recorder.append_lines(&[invoke_record(&push.trace_id, &push.invoked_function_urn)]);
            }
        })
        .telemetry_raw(
            format!("127.0.0.1:{telemetry_port}"),
            &Stream::ALL,
            None,
            move |events| {
                let recorder = on_batch.clone();
                async move {
                    let lines: Vec<String> = events.iter().map(|e| compact(e.get())).collect();
                    recorder.append_lines(&lines);
                    if !only_our_echoes(&events) {
                        println!("{RECEIVED}{} events", events.len());
                    }
                }
            },
        )
        .on_ready(move |_| println!("[Extension] registered as {registered_name}"))
        .on_shutdown(move || async move {
            on_stop.flush();
            eprintln!(
                "fnbox-telemetry-recorder: stopped; events are in {}",
                on_stop.out.display()
            );
        })
        .run()
        .await
        .map_err(Failure::Extension)
}

fn port_from_env(var: &str, default: u16) -> Result<u16, Failure> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| Failure::Setup(format!("{var}={v:?} is not a port number"))),
        _ => Ok(default),
    }
}

/// The line recorded per invocation push; `name` first, like the platform's events.
fn invoke_record(trace_id: &str, urn: &str) -> String {
    format!(
        r#"{{"name":"extension.invoke","traceId":{},"invokedFunctionUrn":{}}}"#,
        Value::from(trace_id),
        Value::from(urn)
    )
}

/// `json` without whitespace between tokens; strings, key order and numbers untouched.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Whether a batch holds nothing but the `extension` events made from our own "received"
/// lines. Printing for such a batch would produce the next such batch, forever; its events are
/// still recorded.
fn only_our_echoes(events: &[Box<RawValue>]) -> bool {
    events.iter().all(|raw| {
        let Ok(e) = serde_json::from_str::<Value>(raw.get()) else {
            return false;
        };
        e.get("name").and_then(Value::as_str) == Some(names::EXTENSION)
            && e.get("logs")
                .and_then(Value::as_str)
                .is_some_and(|l| l.contains(RECEIVED))
    })
}

struct Recorder {
    file: Mutex<File>,
    out: PathBuf,
}

impl Recorder {
    /// Writes the lines with a single `write_all`, so lines of concurrent batches never
    /// interleave, then flushes.
    fn append_lines(&self, lines: &[String]) {
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            eprintln!(
                "fnbox-telemetry-recorder: cannot write {}: {e}",
                self.out.display()
            );
        }
    }

    fn flush(&self) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = file.flush().and_then(|()| file.sync_data());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn echo_batches_are_recognised() {
        let echo = r#"{"name":"extension","startTime":"t","logs":"[Extension] received 3 events"}"#;
        let other =
            r#"{"name":"extension","startTime":"t","logs":"[Extension] registered as e.sh"}"#;
        let platform = r#"{"name":"platform.start","startTime":"t","traceId":"r"}"#;
        assert!(only_our_echoes(&[raw(echo)]));
        assert!(!only_our_echoes(&[raw(echo), raw(platform)]));
        assert!(!only_our_echoes(&[raw(other)]));
    }

    #[test]
    fn compact_keeps_strings_order_and_numbers() {
        let pretty = "{\n  \"name\" : \"function\",\n  \"logs\": \"[Function]  a \\\" b\\n\",\n  \"n\": 1.0 }";
        assert_eq!(
            compact(pretty),
            r#"{"name":"function","logs":"[Function]  a \" b\n","n":1.0}"#
        );
    }

    #[test]
    fn invoke_records_are_escaped_json() {
        let line = invoke_record("a\"b", "urn:x");
        assert_eq!(
            line,
            r#"{"name":"extension.invoke","traceId":"a\"b","invokedFunctionUrn":"urn:x"}"#
        );
        assert!(serde_json::from_str::<Value>(&line).is_ok());
    }
}
