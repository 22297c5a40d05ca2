//! Routes every output line of an instance: marked lines become telemetry (`[Function]` from
//! the runtime, `[Extension]` from extensions; in the Lambda dialect every line, as Lambda's
//! `function` and `extension` streams carry all stdout/stderr), every line goes to fnbox's own
//! output (the echo) and to the log of the invocations in flight (for the front door's log tail).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::process::{LineSink, LogLine, Role};
use crate::engine::LineEcho;
use crate::telemetry::{Bus, Event};

/// Marker that makes a runtime line a `function` event.
pub const FUNCTION_MARKER: &str = "[Function]";
/// Marker that makes an extension line an `extension` event.
pub const EXTENSION_MARKER: &str = "[Extension]";
/// Bytes of log kept per invocation (the front door returns the last 4 KiB).
pub const LOG_KEEP_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Capture {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Capture {
    /// Keeps `line`, dropping the oldest lines past [`LOG_KEEP_BYTES`].
    fn push(&mut self, line: &str) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_string());
        while self.bytes > LOG_KEEP_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len() + 1,
                None => break,
            }
        }
    }
}

/// Per-instance line router.
pub struct LogRouter {
    bus: Bus,
    pod_name: String,
    echo: Option<LineEcho>,
    active: Mutex<HashMap<String, Capture>>,
    /// Every line is telemetry, not only marked ones (Lambda).
    every_line: bool,
}

impl LogRouter {
    /// A router publishing to `bus`.
    pub fn new(bus: Bus, pod_name: String, echo: Option<LineEcho>) -> Self {
        Self {
            bus,
            pod_name,
            echo,
            active: Mutex::new(HashMap::new()),
            every_line: false,
        }
    }

    /// Makes every line telemetry, marked or not (Lambda).
    pub fn every_line(mut self) -> Self {
        self.every_line = true;
        self
    }

    /// The sink handed to process readers.
    pub fn sink(self: &Arc<Self>) -> LineSink {
        let me = self.clone();
        Arc::new(move |lines| me.route(lines))
    }

    /// Routes one pipe read's lines: one echo call, one capture lock, then the events (the
    /// text moves into the event; only captures copy it).
    fn route(&self, lines: Vec<LogLine>) {
        if let Some(echo) = &self.echo {
            echo(&self.pod_name, &lines);
        }
        {
            let mut active = self.active.lock().expect("log capture lock");
            if !active.is_empty() {
                for line in lines.iter().filter(|l| *l.role == Role::Runtime) {
                    for cap in active.values_mut() {
                        cap.push(&line.text);
                    }
                }
            }
        }
        for line in lines {
            match &*line.role {
                Role::Runtime => {
                    if self.every_line || line.text.contains(FUNCTION_MARKER) {
                        self.bus.publish(Event::Function {
                            time: Utc::now(),
                            line: line.text,
                        });
                    }
                }
                Role::Extension(name) => {
                    if self.every_line || line.text.contains(EXTENSION_MARKER) {
                        self.bus.publish(Event::Extension {
                            time: Utc::now(),
                            name: name.clone(),
                            line: line.text,
                        });
                    }
                }
            }
        }
    }

    /// Starts capturing the runtime's lines for an invocation.
    pub fn begin(&self, request_id: &str) {
        self.active
            .lock()
            .expect("log capture lock")
            .insert(request_id.to_string(), Capture::default());
    }

    /// What was captured so far for an invocation (capture goes on).
    pub fn snapshot(&self, request_id: &str) -> Vec<String> {
        self.active
            .lock()
            .expect("log capture lock")
            .get(request_id)
            .map(|c| c.lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops capturing and returns what was captured.
    pub fn end(&self, request_id: &str) -> Vec<String> {
        self.active
            .lock()
            .expect("log capture lock")
            .remove(request_id)
            .map(|c| c.lines.into_iter().collect())
            .unwrap_or_default()
    }
}
