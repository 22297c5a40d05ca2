//! Test fakes for fnbox's integration tests, kept out of the release binary.
//!
//! # Layout
//! - [`FixturePackage`]: writes a function package (config + bootstrap) into a temp dir.
//! - [`BASH_HTTP`]: a bash function speaking HTTP/1.1 over `/dev/tcp`, for fixture runtimes.
//! - [`Listener`]: a telemetry listener on 127.0.0.1 that records every batch.
//! - [`process_alive`], [`wait_until`]: checks on real processes.
//! - [`browser`]: a headless Chromium driven over the DevTools protocol (browser tests).
//! - [`http`]: the tests' HTTP client (hyper, one connection per request, bounded).
//! - [`serve`]: the real `fnbox serve` started on an ephemeral port, `fnbox invoke`.
//! - [`pg`]: a throwaway PostgreSQL server (Debian's `postgresql`) for the queue tests.
//! - [`recorder`]: `examples/telemetry` copies and the `fnbox-telemetry-recorder` binary.
//! - [`otlp`]: an OTLP/HTTP receiver decoding the real protobuf (`opentelemetry-proto`).

pub mod browser;
pub mod fglog;
pub mod http;
pub mod otlp;
pub mod pg;
pub mod recorder;
pub mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A bash function `http METHOD PATH [BODY]` that sets `STATUS`, `REQUEST_ID`, `INVOKE_TYPE`,
/// `TRACE_ID` (`X-Cff-Trace-Id`) and `BODY`, talking to `$RUNTIME_API_ADDR` with bash's `/dev/tcp`. Prepended to fixture
/// bootstraps so they need nothing but bash.
pub const BASH_HTTP: &str = r#"#!/bin/bash
set -u
trap '' PIPE
export LC_ALL=C
HOST=${RUNTIME_API_ADDR%:*}
PORT=${RUNTIME_API_ADDR##*:}
http() {
  local method=$1 path=$2 body=${3-} line
  exec 3<>"/dev/tcp/$HOST/$PORT" || return 1
  printf '%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%bContent-Length: %d\r\n\r\n%s' \
    "$method" "$path" "$RUNTIME_API_ADDR" "${EXTRA:-}" "${#body}" "$body" >&3
  IFS=' ' read -r _ STATUS _ <&3
  REQUEST_ID=
  INVOKE_TYPE=
  TRACE_ID=
  while IFS= read -r line <&3; do
    line=${line%$'\r'}
    [ -z "$line" ] && break
    case ${line,,} in
      x-cff-request-id:*) REQUEST_ID=${line#*:}; REQUEST_ID=${REQUEST_ID//[[:space:]]/} ;;
      x-cff-invoke-type:*) INVOKE_TYPE=${line#*:}; INVOKE_TYPE=${INVOKE_TYPE//[[:space:]]/} ;;
      x-cff-trace-id:*) TRACE_ID=${line#*:}; TRACE_ID=${TRACE_ID//[[:space:]]/} ;;
    esac
  done
  BODY=
  IFS= read -r -d '' BODY <&3
  exec 3<&-
  return 0
}
next() {
  while true; do
    http GET /v1/runtime/invocation/request && [ -n "$REQUEST_ID" ] && return 0
    sleep 0.05
  done
}
respond() { http POST "/v1/runtime/invocation/response/$1" "$2"; }
fail() { http POST "/v1/runtime/invocation/error/$1" "$2"; }
# register NAME ADDRESS: FunctionGraph extension registration.
register() {
  EXTRA="FunctionGraph-Extension-Name: $1\r\nFunctionGraph-Extension-Address: $2\r\n" http POST /extension/register ''
}
# subscribe BODY: telemetry subscription.
subscribe() { http POST /telemetry "$1"; }
"#;

/// A function package written to a temporary directory.
pub struct FixturePackage {
    dir: tempfile::TempDir,
}

impl FixturePackage {
    /// A package whose `bootstrap` is [`BASH_HTTP`] followed by `body`, with `function.yaml`
    /// holding `config` (YAML lines, may be empty).
    pub fn bash(config: &str, body: &str) -> Self {
        let pkg = Self::empty(config);
        pkg.write_exec("bootstrap", &format!("{BASH_HTTP}\n{body}\n"));
        pkg
    }

    /// A package with only a `function.yaml`.
    pub fn empty(config: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        // World-readable like a real package, so a contained function's uid can read it.
        let dir = tempfile::Builder::new()
            .prefix("fnbox-fixture-")
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("function.yaml"), config).expect("write function.yaml");
        Self { dir }
    }

    /// Writes a file relative to the package root.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Writes an executable file relative to the package root.
    pub fn write_exec(&self, rel: &str, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(rel, content);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// The package root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How a [`Listener`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 at once.
    Ok,
    /// Sleeps this long, then 200.
    Slow(Duration),
    /// Answers this status.
    Status(u16),
}

/// A telemetry listener on 127.0.0.1 that records every batch it receives.
#[derive(Clone)]
pub struct Listener {
    /// Bound address.
    pub addr: SocketAddr,
    batches: Arc<Mutex<Vec<Vec<serde_json::Value>>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Listener {
    /// Binds `127.0.0.1:port` (0 for any) and serves until the runtime ends.
    pub async fn start(port: u16, behaviour: Behaviour) -> std::io::Result<Self> {
        // A listener of a previous test may still be closing: retry briefly.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let addr = listener.local_addr()?;
        let me = Self {
            addr,
            batches: Default::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
        };
        let state = me.clone();
        let app = axum::Router::new().fallback(move |body: bytes::Bytes| {
            let state = state.clone();
            async move {
                let behaviour = *state.behaviour.lock().unwrap();
                if let Behaviour::Slow(d) = behaviour {
                    tokio::time::sleep(d).await;
                }
                if let Behaviour::Status(code) = behaviour {
                    return axum::http::StatusCode::from_u16(code).unwrap();
                }
                // Telemetry batches are arrays; invoke pushes are single objects.
                let batch = match serde_json::from_slice(&body) {
                    Ok(serde_json::Value::Array(items)) => items,
                    Ok(other) => vec![other],
                    Err(_) => Vec::new(),
                };
                state.batches.lock().unwrap().push(batch);
                axum::http::StatusCode::OK
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(me)
    }

    /// Changes how it answers from now on.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Every batch so far.
    pub fn batches(&self) -> Vec<Vec<serde_json::Value>> {
        self.batches.lock().unwrap().clone()
    }

    /// Every event so far, in arrival order.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.batches().into_iter().flatten().collect()
    }

    /// The `name` of every event so far.
    pub fn names(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| e.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect()
    }
}
