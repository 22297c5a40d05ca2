//! Shared pieces of the fuzz targets: arbitrary requests to a dialect's instance API (the
//! engine played by a detached `InstanceApi`, as in `fnbox-lambda/tests/api.rs`), and the
//! containment check of extracted packages.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::body::Body;
use bytes::Bytes;
use fnbox_engine::instance::channel::{Work, WorkKind};
use fnbox_engine::{InstanceApi, InvokeType};
use tower::ServiceExt;

/// Every path of both dialects' instance APIs (and near misses); a call picks one by index and
/// may add a suffix.
const PATHS: &[&str] = &[
    "/v1/runtime/invocation/request",
    "/v1/runtime/invocation/response/req-1",
    "/v1/runtime/invocation/error/req-1",
    "/v1/runtime/invocation/response/",
    "/v1/runtime/init/error",
    "/extension/register",
    "/telemetry",
    "/2018-06-01/runtime/invocation/next",
    "/2018-06-01/runtime/invocation/req-1/response",
    "/2018-06-01/runtime/invocation/req-1/error",
    "/2018-06-01/runtime/init/error",
    "/2018-06-01/runtime/restore/error",
    "/2018-06-01/ping",
    "/2020-01-01/extension/register",
    "/2020-01-01/extension/event/next",
    "/2020-01-01/extension/init/error",
    "/2020-01-01/extension/exit/error",
    "/2022-07-01/telemetry",
    "/2020-08-15/logs",
    "/",
];

/// Header names the routers read; a call picks one by index, or sends its own name.
const HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "FunctionGraph-Extension-Name",
    "FunctionGraph-Extension-Address",
    "Lambda-Extension-Name",
    "Lambda-Extension-Identifier",
    "Lambda-Extension-Accept-Feature",
    "Lambda-Extension-Function-Error-Type",
    "Lambda-Runtime-Function-Error-Type",
    "Lambda-Runtime-Function-Error-Body",
    "Lambda-Runtime-Function-Response-Mode",
    "Transfer-Encoding",
    "X-Cff-Request-Id",
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];

/// One request of a fuzz run.
#[derive(Arbitrary, Debug)]
pub struct Call {
    method: u8,
    path: u8,
    suffix: String,
    headers: Vec<(u8, String, String)>,
    body: Vec<u8>,
}

impl Call {
    fn request(&self) -> Option<http::Request<Body>> {
        let mut path = PATHS[self.path as usize % PATHS.len()].to_string();
        path.push_str(&self.suffix);
        let mut b = http::Request::builder()
            .method(METHODS[self.method as usize % METHODS.len()])
            .uri(path);
        for (i, own, value) in self.headers.iter().take(8) {
            let name = match HEADERS.get(*i as usize) {
                Some(n) => n.to_string(),
                None => own.clone(),
            };
            b = b.header(name, value.as_str());
        }
        b.body(Body::from(self.body.clone())).ok()
    }
}

/// Which dialect's API.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    FunctionGraph,
    Lambda,
}

/// A package of each dialect on disk, loaded once (kept for the whole run).
fn package(which: Which) -> Arc<fnbox_package::Package> {
    static FG: OnceLock<(tempfile::TempDir, Arc<fnbox_package::Package>)> = OnceLock::new();
    static LAMBDA: OnceLock<(tempfile::TempDir, Arc<fnbox_package::Package>)> = OnceLock::new();
    let make = |config: &str, ext: &str| {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("function.yaml"), config).unwrap();
        let boot = dir.path().join("bootstrap");
        std::fs::write(&boot, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ext = dir.path().join(ext);
        std::fs::create_dir_all(ext.parent().unwrap()).unwrap();
        std::fs::write(&ext, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&ext, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pkg = Arc::new(fnbox_package::load(dir.path()).expect("fuzz package loads"));
        (dir, pkg)
    };
    match which {
        Which::FunctionGraph => FG
            .get_or_init(|| make("func_name: fuzz\n", "extension/extensionA.sh"))
            .1
            .clone(),
        Which::Lambda => LAMBDA
            .get_or_init(|| {
                make(
                    "func_name: fuzz\ndialect: lambda\nhandler: main.handler\n",
                    "extensions/ext-a",
                )
            })
            .1
            .clone(),
    }
}

/// Sends up to four calls to a fresh API with one invocation (`req-1`) waiting for the runtime.
/// Time is paused, so a long-poll that would wait ends at once (its timeout).
pub fn run_calls(which: Which, calls: &[Call]) {
    let pkg = package(which);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (api, _init) = InstanceApi::detached(pkg, "fuzz-128-00000000");
        let api = Arc::new(api);
        let router = match which {
            Which::FunctionGraph => fnbox_fg::api::router(api.clone()),
            Which::Lambda => fnbox_lambda::api::router(api.clone()),
        };
        let _reply = api
            .runtime
            .submit(Work {
                request_id: "req-1".into(),
                body: Bytes::from_static(b"{}"),
                kind: WorkKind::Invoke(InvokeType::Sync),
                deadline_epoch_ms: u64::MAX / 2,
                trace: None,
            })
            .await;
        for call in calls.iter().take(4) {
            let Some(req) = call.request() else { continue };
            let Ok(Ok(resp)) =
                tokio::time::timeout(Duration::from_secs(30), router.clone().oneshot(req)).await
            else {
                continue;
            };
            let status = resp.status();
            let Ok(Ok(body)) = tokio::time::timeout(
                Duration::from_secs(30),
                axum::body::to_bytes(resp.into_body(), 16 << 20),
            )
            .await
            else {
                continue;
            };
            // CONTRACT §4: an error the API words itself is a JSON body.
            if status.is_client_error() && !body.is_empty() {
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
                    "{status} with a body that is not JSON: {:?}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        api.cancel.cancel();
    });
}

/// Panics when anything under `dir` (links resolved) lies outside `root`.
pub fn assert_inside(root: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if let Ok(real) = p.canonicalize() {
            assert!(
                real.starts_with(root),
                "{} resolves to {}, outside {}",
                p.display(),
                real.display(),
                root.display()
            );
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            assert_inside(root, &p);
        }
    }
}
