//! fnbox's echo of instance output to its own stderr.

use std::io::Write;
use std::sync::Arc;

use fnbox_engine::instance::process::{LogLine, Role};
use fnbox_engine::LineEcho;

/// An echo that writes each line with one `write` call: formatting through `writeln!` on a
/// locked stderr costs several system calls a line, which is what limited how fast fnbox
/// could read a function printing without pause. `with_pod` prefixes the instance name
/// (serve runs many instances; run has one).
pub fn stderr_echo(with_pod: bool) -> LineEcho {
    Arc::new(move |pod: &str, line: &LogLine| {
        let mut buf = String::with_capacity(line.text.len() + pod.len() + 32);
        if with_pod {
            buf.push('[');
            buf.push_str(pod);
            buf.push_str("] ");
        }
        if let Role::Extension(name) = &*line.role {
            buf.push('[');
            buf.push_str(name);
            buf.push_str("] ");
        }
        buf.push_str(&line.text);
        buf.push('\n');
        let _ = std::io::stderr().lock().write_all(buf.as_bytes());
    })
}
