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
//! `{"name":"extension.invoke","traceId":…,"invokedFunctionUrn":…}`. The file is appended to and
//! flushed after every batch. Stdout gets `[Extension] registered as <name>` and `[Extension]
//! received <n> events`, which the platform turns into `extension` telemetry events.
//!
//! On shutdown (SIGTERM, after the final drain of late telemetry) stderr gets a summary of what
//! this process received: a header with the counts per event name and the file's path, then one
//! aligned line per event in arrival order (at most [`SUMMARY_LINES`]). Summary lines never
//! contain the `[Extension]` marker (a log's leading marker is dropped, any other occurrence is
//! written `<Extension>`), so they are plain log output, never telemetry.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use fnbox_extension::events::names;
use fnbox_extension::{
    launcher_name_from_args, Extension, ExtensionConfig, ExtensionError, Stream, TelemetryEvent,
};
use serde_json::value::RawValue;
use serde_json::Value;

/// Prefix of the line printed per batch; see [`only_our_echoes`].
const RECEIVED: &str = "[Extension] received ";

/// The marker that turns an extension's output line into telemetry; kept out of the summary.
const EXTENSION_MARKER: &str = "[Extension]";

/// Event lines in the shutdown summary; the rest are only counted.
const SUMMARY_LINES: usize = 200;

/// Width of the name column of the summary (`platform.restoreRuntimeDone`).
const NAME_WIDTH: usize = 27;

/// Width of the time column of the summary (`2026-05-01T10:00:00.000Z`).
const TIME_WIDTH: usize = 24;

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
        summary: Mutex::new(Summary::default()),
        out,
    });

    let on_invoke = recorder.clone();
    let on_batch = recorder.clone();
    let on_stop = recorder.clone();
    let registered_name = name.clone();
    let summary_name = name.clone();
    Extension::builder(name)
        .config(config)
        .invoke_address(format!("127.0.0.1:{invoke_port}"))
        .on_invoke(move |push| {
            let recorder = on_invoke.clone();
            async move {
                recorder.append_lines(&[invoke_record(&push.trace_id, &push.invoked_function_urn)]);
                recorder.note_push(&push.trace_id, &utc_now());
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
                    // No await in between (and a single-threaded runtime): the summary lists
                    // things in the file's order.
                    recorder.append_lines(&lines);
                    recorder.note_events(&events);
                    if !only_our_echoes(&events) {
                        println!("{RECEIVED}{} events", events.len());
                    }
                }
            },
        )
        .on_ready(move |_| println!("[Extension] registered as {registered_name}"))
        .on_shutdown(move || async move {
            on_stop.flush();
            let text = on_stop.summary_text(&summary_name);
            // One write, so the summary's lines stay together in the platform's log.
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
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
    summary: Mutex<Summary>,
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

    fn note_events(&self, events: &[Box<RawValue>]) {
        let mut summary = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        for raw in events {
            summary.event(raw.get());
        }
    }

    fn note_push(&self, trace_id: &str, received_at: &str) {
        let mut summary = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        summary.push(trace_id, received_at);
    }

    fn summary_text(&self, name: &str) -> String {
        let summary = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        summary.render(name, &self.out.display().to_string())
    }
}

/// What the shutdown summary shows: counts of everything, lines for the first
/// [`SUMMARY_LINES`] things received.
#[derive(Default)]
struct Summary {
    /// Telemetry events received.
    events: usize,
    /// Invocation pushes received.
    pushes: usize,
    /// Events per name, in the order the names were first seen.
    counts: Vec<(String, usize)>,
    /// One rendered line per event or push, in arrival order.
    lines: Vec<String>,
    /// Events and pushes without a line.
    omitted: usize,
}

impl Summary {
    fn event(&mut self, json: &str) {
        let event = match serde_json::from_str::<Value>(json) {
            Ok(v) => TelemetryEvent::from_value(v),
            Err(_) => TelemetryEvent::Other(Value::String(json.to_string())),
        };
        let name = match event.name() {
            "" => "(no name)".to_string(),
            n => clean(n, NAME_WIDTH + 20),
        };
        self.events += 1;
        match self.counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => self.counts.push((name.clone(), 1)),
        }
        if self.lines.len() < SUMMARY_LINES {
            let time = event.start_time().unwrap_or("");
            self.lines
                .push(summary_line(&name, time, &event_detail(&event)));
        } else {
            self.omitted += 1;
        }
    }

    fn push(&mut self, trace_id: &str, received_at: &str) {
        self.pushes += 1;
        if self.lines.len() < SUMMARY_LINES {
            self.lines.push(summary_line(
                "extension.invoke",
                received_at,
                &format!("trace={}", short_id(trace_id)),
            ));
        } else {
            self.omitted += 1;
        }
    }

    /// The header, the file's path and the event lines, each ending in a newline.
    fn render(&self, name: &str, out: &str) -> String {
        let counts = self
            .counts
            .iter()
            .map(|(n, c)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut header = format!(
            "telemetry received by {}: {} event{}",
            clean(name, 100),
            self.events,
            plural(self.events)
        );
        if !counts.is_empty() {
            header.push_str(&format!(" ({counts})"));
        }
        header.push_str(&format!(
            ", and {} invocation push{}",
            self.pushes,
            if self.pushes == 1 { "" } else { "es" }
        ));
        let mut lines = vec![
            header,
            format!("  every event, one JSON object per line, in {out}"),
        ];
        lines.extend(self.lines.iter().cloned());
        if self.omitted > 0 {
            lines.push(format!("  … {} more, see {out}", self.omitted));
        }
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.replace(EXTENSION_MARKER, "<Extension>"));
            text.push('\n');
        }
        text
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `  <name> <time> <detail>`, the first two padded to their columns.
fn summary_line(name: &str, time: &str, detail: &str) -> String {
    let line = format!(
        "  {name:<NAME_WIDTH$} {:<TIME_WIDTH$} {detail}",
        clean(time, TIME_WIDTH + 16)
    );
    line.trim_end().to_string()
}

/// The part of a summary line after the time: ids, status, metrics or the log line.
fn event_detail(event: &TelemetryEvent) -> String {
    match event {
        TelemetryEvent::InitStart(e)
        | TelemetryEvent::Start(e)
        | TelemetryEvent::RestoreStart(e) => {
            format!("trace={}", short_id(&e.trace_id))
        }
        TelemetryEvent::InitRuntimeDone(e)
        | TelemetryEvent::RuntimeDone(e)
        | TelemetryEvent::RestoreRuntimeDone(e) => format!(
            "trace={} status={}{}",
            short_id(&e.trace_id),
            clean(&e.status, 40),
            error_type(e.error_type.as_deref())
        ),
        TelemetryEvent::InitReport(e)
        | TelemetryEvent::Report(e)
        | TelemetryEvent::RestoreReport(e) => {
            let m = &e.metrics;
            format!(
                "trace={} status={}{} duration={:.2}ms billed={}ms memory={:.1}/{}MB pod={}",
                short_id(&e.trace_id),
                clean(&e.status, 40),
                error_type(e.error_type.as_deref()),
                m.duration_ms,
                m.billing_duration_ms,
                m.memory_used,
                m.memory_size,
                clean(&m.pod_name, 80)
            )
        }
        TelemetryEvent::LogsDropped(e) => format!(
            "dropped {} record{} ({} bytes): {}",
            e.dropped_records,
            if e.dropped_records == 1 { "" } else { "s" },
            e.dropped_bytes,
            clean(&e.reason, 100)
        ),
        TelemetryEvent::Function(e) => quoted_log(&e.logs, "[Function]"),
        TelemetryEvent::Extension(e) => quoted_log(&e.logs, EXTENSION_MARKER),
        TelemetryEvent::Other(v) => clean(&v.to_string(), 120),
    }
}

fn error_type(error_type: Option<&str>) -> String {
    error_type
        .map(|t| format!(" errorType={}", clean(t, 60)))
        .unwrap_or_default()
}

/// The log line as a JSON string, without its leading marker (the name column says which
/// stream it came from), shortened to fit a line.
fn quoted_log(logs: &str, marker: &str) -> String {
    let text = logs.trim_start();
    let text = text.strip_prefix(marker).map_or(text, str::trim_start);
    clean(&Value::from(text).to_string(), 120)
}

/// The first 8 characters of a request id, which tell the invocations of a run apart.
fn short_id(id: &str) -> String {
    clean(id, 8)
}

/// `s` on one line: control characters escaped, cut to `max` characters (then `…`).
fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The current UTC time as the platform writes it (RFC 3339, milliseconds, `Z`).
fn utc_now() -> String {
    rfc3339_millis(chrono::Utc::now())
}

/// `2023-11-14T22:13:20.007Z`: milliseconds always, `Z` for UTC.
fn rfc3339_millis(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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

    fn fixture_batch() -> Vec<String> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fnbox_batch.json"
        ))
        .unwrap();
        let events: Vec<Value> = serde_json::from_str(&text).unwrap();
        events.iter().map(Value::to_string).collect()
    }

    #[test]
    fn summary_has_a_header_and_one_aligned_line_per_event() {
        let mut summary = Summary::default();
        summary.push(
            "7c1f0d52-8a2e-4c0e-9a53-2f4d1b6e9a01",
            "2026-05-01T10:00:00.043Z",
        );
        for event in fixture_batch() {
            summary.event(&event);
        }
        let text = summary.render("extensionTelemetry.sh", "/tmp/x.jsonl");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "telemetry received by extensionTelemetry.sh: 15 events (1 platform.initStart, \
             1 extension, 1 platform.initRuntimeDone, 1 platform.initReport, 2 platform.start, \
             1 function, 2 platform.runtimeDone, 2 platform.report, 1 platform.logsDropped, \
             1 platform.restoreStart, 1 platform.restoreRuntimeDone, 1 platform.restoreReport), \
             and 1 invocation push"
        );
        assert_eq!(
            lines[1],
            "  every event, one JSON object per line, in /tmp/x.jsonl"
        );
        let expected = [
            "  extension.invoke            2026-05-01T10:00:00.043Z trace=7c1f0d52…",
            "  platform.initStart          2026-05-01T10:00:00.000Z trace=7c1f0d52…",
            "  extension                   2026-05-01T10:00:00.012Z \"registered as extensionTelemetry.sh\"",
            "  platform.initRuntimeDone    2026-05-01T10:00:00.040Z trace=7c1f0d52… status=success",
            "  platform.initReport         2026-05-01T10:00:00.000Z trace=7c1f0d52… status=success duration=41.27ms billed=42ms memory=7.5/128MB pod=telemetry-demo-128-0a1b2c3d",
            "  platform.start              2026-05-01T10:00:00.042Z trace=7c1f0d52…",
            "  function                    2026-05-01T10:00:00.050Z \"handling 7c1f0d52-8a2e-4c0e-9a53-2f4d1b6e9a01\"",
            "  platform.runtimeDone        2026-05-01T10:00:00.061Z trace=7c1f0d52… status=success",
            "  platform.report             2026-05-01T10:00:00.042Z trace=7c1f0d52… status=success duration=21.00ms billed=22ms memory=8.2/128MB pod=telemetry-demo-128-0a1b2c3d",
            "  platform.start              2026-05-01T10:00:01.000Z trace=d2b5a3f0…",
            "  platform.runtimeDone        2026-05-01T10:00:06.000Z trace=d2b5a3f0… status=timeout errorType=Sandbox.Timedout",
            "  platform.report             2026-05-01T10:00:01.000Z trace=d2b5a3f0… status=timeout errorType=Sandbox.Timedout duration=5001.50ms billed=5002ms memory=9.0/128MB pod=telemetry-demo-128-0a1b2c3d",
            "  platform.logsDropped        2026-05-01T10:00:07.000Z dropped 12 records (3456 bytes): subscriber queue full",
            "  platform.restoreStart       2026-05-01T10:00:08.000Z trace=e0000000…",
            "  platform.restoreRuntimeDone 2026-05-01T10:00:08.010Z trace=e0000000… status=failure errorType=Runtime.ExitError",
            "  platform.restoreReport      2026-05-01T10:00:08.000Z trace=e0000000… status=failure errorType=Runtime.ExitError duration=11.00ms billed=11ms memory=3.0/128MB pod=telemetry-demo-128-0a1b2c3d",
        ];
        assert_eq!(&lines[2..], &expected[..]);
    }

    #[test]
    fn summary_lines_never_carry_the_extension_marker() {
        let mut summary = Summary::default();
        summary
            .event(r#"{"name":"extension","startTime":"t","logs":"[Extension] a [Extension] b"}"#);
        summary
            .event(r#"{"name":"function","startTime":"t","logs":"[Function] x [Extension] y\nz"}"#);
        summary.event(r#"{"name":"[Extension]","traceId":"[Extension]"}"#);
        let text = summary.render("[Extension].sh", "/tmp/[Extension]");
        assert!(!text.contains(EXTENSION_MARKER), "{text}");
        assert_eq!(text.lines().count(), 2 + 3, "{text}");
        assert!(text.contains(r#""a <Extension> b""#), "{text}");
        assert!(text.contains(r#""x <Extension> y\nz""#), "{text}");
    }

    #[test]
    fn summary_is_bounded() {
        let mut summary = Summary::default();
        for i in 0..SUMMARY_LINES + 5 {
            summary.event(&format!(
                r#"{{"name":"function","startTime":"t","logs":"[Function] {i}"}}"#
            ));
        }
        summary.push("r", "t");
        let text = summary.render("e.sh", "/tmp/f.jsonl");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + SUMMARY_LINES + 1);
        assert!(lines[0].contains(": 205 events (205 function), and 1 invocation push"));
        assert_eq!(lines[lines.len() - 1], "  … 6 more, see /tmp/f.jsonl");
    }

    #[test]
    fn odd_values_are_shown_on_one_line() {
        let mut summary = Summary::default();
        summary.event(r#"{"name":"custom","startTime":"a\nb","x":[1,2]}"#);
        summary.event(r#"[1,2]"#);
        let text = summary.render("e.sh", "f");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[2].starts_with("  custom "), "{text}");
        assert!(lines[2].contains(r"a\nb"), "{text}");
        assert!(lines[3].starts_with("  (no name) "), "{text}");
        assert!(lines[3].ends_with("[1,2]"), "{text}");
        assert!(lines[0].contains("(1 custom, 1 (no name))"), "{text}");
    }

    #[test]
    fn utc_times_are_formatted_like_the_platform() {
        let at = |secs: i64, millis: u32| {
            rfc3339_millis(chrono::DateTime::from_timestamp(secs, millis * 1_000_000).unwrap())
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_700_000_000, 7), "2023-11-14T22:13:20.007Z");
        assert_eq!(at(951_782_400, 999), "2000-02-29T00:00:00.999Z");
        assert_eq!(at(1_798_675_200, 0), "2026-12-31T00:00:00.000Z");
        assert_eq!(utc_now().len(), 24);
    }
}
