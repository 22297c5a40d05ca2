//! A headless Chromium for the browser tests, driven over the DevTools protocol (CDP) on a
//! WebSocket: Debian's `chromium` (`apt-get install chromium`; `.ci/run` installs it), never a
//! downloaded browser. Only what the tests use: open a page, evaluate JavaScript (waiting for
//! a condition), take a screenshot.
//!
//! # Design
//! The browser listens on `127.0.0.1:<port>` (`--remote-debugging-port=0`; the port is read
//! from `DevToolsActivePort` in its throw-away profile); one page target is attached with a
//! flat session, and commands are matched to their answers by id (events are skipped). The
//! browser runs in a process group of its own, killed when the [`Browser`] is dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The launch flags that work in a container as root, without network or GPU.
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
];

/// Viewport of the page, CSS pixels.
pub const VIEWPORT: (u32, u32) = (1400, 1000);

/// Where the browser is: `$FNBOX_CHROMIUM`, else `chromium` / `chromium-browser` on `PATH`.
pub fn chromium_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FNBOX_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(
        "no chromium on PATH: install Debian's chromium (apt-get install chromium; .ci/run \
         does), or set FNBOX_CHROMIUM to a Chromium binary"
            .into(),
    )
}

/// A headless Chromium with one page.
pub struct Browser {
    child: tokio::process::Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the browser and opens a blank page; errors say what is missing.
    pub async fn launch() -> Result<Browser, String> {
        let exe = chromium_path()?;
        let profile = tempfile::Builder::new()
            .prefix("fnbox-chromium-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let endpoint = devtools_endpoint(profile.path()).await?;
        let (ws, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .map_err(|e| format!("DevTools connection to {endpoint}: {e}"))?;
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = b
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        b.session = attached["sessionId"]
            .as_str()
            .ok_or("no sessionId from Target.attachToTarget")?
            .to_string();
        b.call("Page.enable", json!({})).await?;
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        Ok(b)
    }

    /// Sends one command (to the page once attached) and returns its `result`.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = self.session.clone().into();
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        let wait = async {
            while let Some(m) = self.ws.next().await {
                let m = m.map_err(|e| format!("{method}: {e}"))?;
                let Message::Text(text) = m else { continue };
                let v: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
                if v["id"].as_u64() != Some(id) {
                    continue;
                }
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
            Err(format!("{method}: the browser closed the connection"))
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .map_err(|_| format!("{method}: no answer within 30 s"))?
    }

    /// Opens `url` and waits until its document has loaded.
    pub async fn goto(&mut self, url: &str) -> Result<(), String> {
        self.call("Page.navigate", json!({"url": url})).await?;
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        )
        .await
        .map(|_| ())
    }

    /// Evaluates `js` in the page (promises awaited) and returns its value.
    pub async fn eval(&mut self, js: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!("{js}: {ex}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluates `js` every 100 ms until its value is truthy (not `null`, `false`, `0` or
    /// `""`), and returns that value; the error shows the last value.
    pub async fn wait_for(&mut self, js: &str, within: Duration) -> Result<Value, String> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let v = self.eval(js).await?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= end {
                return Err(format!("not true within {within:?}: {js} (last: {v})"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the viewport to `path` (directories created).
    pub async fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the browser and its renderer, GPU and zygote processes.
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits (up to 20 s) for the browser's `DevToolsActivePort` file: port, then the path of
/// the browser target.
async fn devtools_endpoint(profile: &Path) -> Result<String, String> {
    let file = profile.join("DevToolsActivePort");
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return Ok(format!("ws://127.0.0.1:{}{}", port.trim(), path.trim()));
            }
        }
        if tokio::time::Instant::now() >= end {
            return Err(format!(
                "chromium did not open its DevTools port within 20 s ({} missing)",
                file.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
