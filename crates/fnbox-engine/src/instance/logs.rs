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

/// The runtime's last lines for one invocation: their bytes, each line followed by `\n`, in
/// one ring buffer capped at [`LOG_KEEP_BYTES`] (a line costs a copy, not an allocation: a
/// function printing a million lines passes every one through here).
#[derive(Default)]
struct Capture {
    text: VecDeque<u8>,
}

impl Capture {
    /// Keeps `line`, dropping the oldest whole lines past [`LOG_KEEP_BYTES`].
    fn push(&mut self, line: &str) {
        self.text.extend(line.as_bytes());
        self.text.push_back(b'\n');
        while self.text.len() > LOG_KEEP_BYTES {
            let (front, back) = self.text.as_slices();
            let end = match memchr::memchr(b'\n', front) {
                Some(i) => Some(i),
                None => memchr::memchr(b'\n', back).map(|i| front.len() + i),
            };
            match end {
                Some(i) => drop(self.text.drain(..=i)),
                None => self.text.clear(),
            }
        }
    }

    /// The kept lines, oldest first.
    fn lines(&self) -> Vec<String> {
        let (front, back) = self.text.as_slices();
        let mut bytes = Vec::with_capacity(self.text.len());
        bytes.extend_from_slice(front);
        bytes.extend_from_slice(back);
        // Whole lines of `str`s were pushed, so the bytes are UTF-8.
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        lines.pop(); // after the last `\n`
        lines
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
            .map(Capture::lines)
            .unwrap_or_default()
    }

    /// Stops capturing and returns what was captured.
    pub fn end(&self, request_id: &str) -> Vec<String> {
        self.active
            .lock()
            .expect("log capture lock")
            .remove(request_id)
            .map(|c| c.lines())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_last_whole_lines_within_its_cap() {
        let mut cap = Capture::default();
        assert!(cap.lines().is_empty());
        cap.push("first");
        cap.push("");
        cap.push("dé");
        assert_eq!(cap.lines(), ["first", "", "dé"]);
        // Far past the cap, so the ring wraps many times.
        for i in 0..20_000 {
            cap.push(&format!("line {i:05}"));
        }
        let lines = cap.lines();
        assert_eq!(lines.last().map(String::as_str), Some("line 19999"));
        let kept: usize = lines.iter().map(|l| l.len() + 1).sum();
        assert!(
            kept <= LOG_KEEP_BYTES && kept > LOG_KEEP_BYTES - 12,
            "{kept}"
        );
        for pair in lines.windows(2) {
            assert!(pair[0] < pair[1], "in order, whole: {pair:?}");
        }
        // A line longer than the cap leaves nothing (as before: whole lines only).
        cap.push(&"x".repeat(LOG_KEEP_BYTES + 1));
        assert!(cap.lines().is_empty());
    }
}
