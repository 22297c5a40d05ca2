//! `fnbox serve`'s `--http-*` flags: the front door's connection limits (see
//! `fnbox_serve::http_limits` for the `http:` config key and the defaults).

use fnbox_serve::http_limits::{HttpFlags, CONNECTIONS_RANGE};

#[derive(clap::Args, Debug, Default)]
pub struct HttpArgs {
    /// Time a client has to send a complete request head, from connecting or from a request's
    /// first byte (e.g. `10s`). Default `http.header_timeout` of --config, else 10s.
    #[arg(long, value_parser = crate::serve::parse_duration)]
    pub http_header_timeout: Option<std::time::Duration>,
    /// Time a client has to send a request body, from the end of its head (e.g. `60s`).
    /// Default `http.body_timeout` of --config, else 60s.
    #[arg(long, value_parser = crate::serve::parse_duration)]
    pub http_body_timeout: Option<std::time::Duration>,
    /// Time a kept-alive connection may stay idle (e.g. `60s`). Default `http.idle_timeout`
    /// of --config, else 60s.
    #[arg(long, value_parser = crate::serve::parse_duration)]
    pub http_idle_timeout: Option<std::time::Duration>,
    /// Connections served at once; more wait in the listen backlog. Default
    /// `http.max_connections` of --config, else 1024.
    #[arg(long, value_parser = clap::value_parser!(u32).range(CONNECTIONS_RANGE.0 as i64..=CONNECTIONS_RANGE.1 as i64))]
    pub http_max_connections: Option<u32>,
}

impl HttpArgs {
    pub fn flags(&self) -> HttpFlags {
        HttpFlags {
            header_timeout: self.http_header_timeout,
            body_timeout: self.http_body_timeout,
            idle_timeout: self.http_idle_timeout,
            max_connections: self.http_max_connections,
        }
    }
}
