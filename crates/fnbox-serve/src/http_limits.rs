//! The front door's connection limits: the `http:` key of the config file and the
//! `--http-*` flags of `fnbox serve`, merged over [`HttpLimits::FRONT_DOOR`].
//!
//! ```yaml
//! http:
//!   header_timeout: 10     # seconds to send a request head (slowloris)
//!   body_timeout: 60       # seconds to send a request body, from the end of its head
//!   idle_timeout: 60       # seconds a kept-alive connection may stay idle
//!   max_connections: 1024  # open at once; more wait in the listen backlog
//! ```

use std::time::Duration;

use fnbox_engine::http_serve::HttpLimits;
use serde::Deserialize;

/// Range of the three timeouts in the file, seconds.
pub const TIMEOUT_RANGE: (u32, u32) = (1, 3600);
/// Range of `max_connections`.
pub const CONNECTIONS_RANGE: (u32, u32) = (1, 65_536);

/// The `http:` key of the config file; each field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// `header_timeout`, seconds.
    pub header_timeout: Option<u32>,
    /// `body_timeout`, seconds.
    pub body_timeout: Option<u32>,
    /// `idle_timeout`, seconds.
    pub idle_timeout: Option<u32>,
    /// `max_connections`.
    pub max_connections: Option<u32>,
}

impl HttpFile {
    /// Checks every field; the error names it (`http.<field>`) and its range.
    pub fn check(&self) -> Result<(), (String, String)> {
        let range = |field: &str, v: Option<u32>, (lo, hi): (u32, u32)| match v {
            Some(v) if v < lo || v > hi => Err((
                format!("http.{field}"),
                format!("{v} is out of range: allowed {lo}..={hi}"),
            )),
            _ => Ok(()),
        };
        range("header_timeout", self.header_timeout, TIMEOUT_RANGE)?;
        range("body_timeout", self.body_timeout, TIMEOUT_RANGE)?;
        range("idle_timeout", self.idle_timeout, TIMEOUT_RANGE)?;
        range("max_connections", self.max_connections, CONNECTIONS_RANGE)?;
        Ok(())
    }
}

/// What the command line says (each wins over the file).
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpFlags {
    /// `--http-header-timeout`.
    pub header_timeout: Option<Duration>,
    /// `--http-body-timeout`.
    pub body_timeout: Option<Duration>,
    /// `--http-idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--http-max-connections`.
    pub max_connections: Option<u32>,
}

/// The limits: flags over the file over [`HttpLimits::FRONT_DOOR`].
pub fn resolve(flags: &HttpFlags, file: Option<&HttpFile>) -> HttpLimits {
    let d = HttpLimits::FRONT_DOOR;
    let file = file.cloned().unwrap_or_default();
    let secs = |v: Option<u32>| v.map(|s| Duration::from_secs(u64::from(s)));
    HttpLimits {
        header_timeout: flags
            .header_timeout
            .or(secs(file.header_timeout))
            .unwrap_or(d.header_timeout),
        body_timeout: flags
            .body_timeout
            .or(secs(file.body_timeout))
            .unwrap_or(d.body_timeout),
        idle_timeout: flags
            .idle_timeout
            .or(secs(file.idle_timeout))
            .unwrap_or(d.idle_timeout),
        max_connections: flags
            .max_connections
            .or(file.max_connections)
            .map(|n| n as usize)
            .unwrap_or(d.max_connections),
    }
}

/// The start-up line.
pub fn describe(l: &HttpLimits) -> String {
    format!(
        "front door: header timeout {:?}, body timeout {:?}, idle timeout {:?}, at most {} connections",
        l.header_timeout, l.body_timeout, l.idle_timeout, l.max_connections
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_over_the_defaults() {
        let file = HttpFile {
            header_timeout: Some(5),
            max_connections: Some(10),
            ..Default::default()
        };
        let flags = HttpFlags {
            header_timeout: Some(Duration::from_millis(500)),
            idle_timeout: Some(Duration::from_secs(7)),
            ..Default::default()
        };
        let l = resolve(&flags, Some(&file));
        assert_eq!(l.header_timeout, Duration::from_millis(500));
        assert_eq!(l.body_timeout, HttpLimits::FRONT_DOOR.body_timeout);
        assert_eq!(l.idle_timeout, Duration::from_secs(7));
        assert_eq!(l.max_connections, 10);
        assert_eq!(resolve(&HttpFlags::default(), None), HttpLimits::FRONT_DOOR);
    }

    #[test]
    fn out_of_range_names_the_field() {
        let bad = HttpFile {
            body_timeout: Some(0),
            ..Default::default()
        };
        assert_eq!(
            bad.check().unwrap_err(),
            (
                "http.body_timeout".to_string(),
                "0 is out of range: allowed 1..=3600".to_string()
            )
        );
        let bad = HttpFile {
            max_connections: Some(100_000),
            ..Default::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "http.max_connections");
    }
}
