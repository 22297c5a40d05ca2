//! fnbox's echo of instance output to its own stderr.

use std::io::Write;
use std::sync::Arc;

use fnbox_engine::instance::process::{LogLine, Role};
use fnbox_engine::LineEcho;

/// An echo that writes each batch of lines (one pipe read's) with one `write` call: a line at
/// a time costs a system call a line, which is what limited how fast fnbox could read a
/// function printing without pause. `with_pod` prefixes the instance name (serve runs many
/// instances; run has one).
pub fn stderr_echo(with_pod: bool) -> LineEcho {
    Arc::new(move |pod: &str, lines: &[LogLine]| {
        let size: usize = lines.iter().map(|l| l.text.len() + pod.len() + 32).sum();
        let mut buf = String::with_capacity(size);
        for line in lines {
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
        }
        let _ = std::io::stderr().lock().write_all(buf.as_bytes());
    })
}
