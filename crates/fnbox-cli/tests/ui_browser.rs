//! The browser timeline (`/ui`) in a real headless Chromium (Debian's `chromium`, driven over
//! the DevTools protocol by `fnbox_testkit::browser`): the real `fnbox serve` with two
//! functions, invocations from the page's form and from outside, and what the page shows for
//! them: lanes, bars, statuses, the detail panel, the token prompt. Screenshots are kept in
//! `target/fnbox-ui/` for people to look at.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fnbox_testkit::browser::Browser;
use fnbox_testkit::serve::Serve;
use fnbox_testkit::{http, FixturePackage};

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");
const WAIT: Duration = Duration::from_secs(20);

/// Answers with the event; `sleep` outlives the 3 s timeout; `crash` exits mid-invocation.
const RUNTIME: &str = r#"
while next; do
  case "$BODY" in
    *sleep*) echo "[Function] sleeping on $REQUEST_ID"; sleep 30 ;;
    *crash*) echo "[Function] crashing on $REQUEST_ID"; exit 3 ;;
    *) echo "[Function] handled $REQUEST_ID"; respond "$REQUEST_ID" "{\"echo\":$BODY}" ;;
  esac
done
"#;

fn package(name: &str) -> FixturePackage {
    FixturePackage::bash(&format!("func_name: {name}\ntimeout: 3\n"), RUNTIME)
}

/// `target/fnbox-ui/<name>`: next to the binaries cargo built (target/<profile>/fnbox).
fn screenshot_path(name: &str) -> PathBuf {
    let bin = PathBuf::from(FNBOX);
    let target = bin
        .parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>/fnbox");
    target.join("fnbox-ui").join(name)
}

async fn browser() -> Browser {
    Browser::launch()
        .await
        .unwrap_or_else(|e| panic!("headless chromium: {e}"))
}

/// Invokes `function` from outside the page; returns the request id.
async fn invoke(addr: SocketAddr, function: &str, event: &str, token: Option<&str>) -> String {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = token {
        headers.push(("X-Auth-Token", t));
    }
    let r = http::request(
        addr,
        "POST",
        &format!("/v2/local/fgs/functions/default:{function}/invocations"),
        &headers,
        event.to_string(),
    )
    .await
    .expect("invoke");
    r.header("X-Cff-Request-Id")
        .unwrap_or_else(|| panic!("no request id: {:?}", r.status_text()))
        .to_string()
}

fn bar(request_id: &str, phase: &str) -> String {
    format!(
        r#"document.querySelector('rect.bar[data-request-id="{request_id}"][data-phase="{phase}"]')"#
    )
}

async fn wait_outcome(b: &mut Browser, request_id: &str, outcome: &str) {
    let js = format!("{}?.dataset.outcome", bar(request_id, "invoke"));
    let want = format!("({js}) === '{outcome}' ? 'yes' : ''");
    if let Err(e) = b.wait_for(&want, WAIT).await {
        let got = b.eval(&js).await.unwrap_or_default();
        panic!("bar of {request_id} not {outcome} (it is {got}): {e}");
    }
}

async fn click_bar(b: &mut Browser, request_id: &str) {
    b.eval(&format!(
        "{}.dispatchEvent(new MouseEvent('click', {{bubbles: true}}))",
        bar(request_id, "invoke")
    ))
    .await
    .unwrap();
    b.wait_for(
        &format!("document.getElementById('detail').dataset.requestId === '{request_id}'"),
        WAIT,
    )
    .await
    .unwrap();
}

async fn text_of(b: &mut Browser, id: &str) -> String {
    b.eval(&format!("document.getElementById('{id}').textContent"))
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn submit_form(b: &mut Browser, function: &str, event: &str, async_: bool) -> String {
    let js = format!(
        r#"(() => {{
            const r = document.getElementById('invoke-result');
            r.dataset.requestId = '';
            document.getElementById('invoke-function').value = {function:?};
            document.getElementById('invoke-event').value = {event:?};
            document.getElementById('invoke-{mode}').checked = true;
            document.getElementById('invoke-submit').click();
            return true;
        }})()"#,
        mode = if async_ { "async" } else { "sync" }
    );
    b.eval(&js).await.unwrap();
    b.wait_for(
        "document.getElementById('invoke-result').dataset.requestId",
        WAIT,
    )
    .await
    .unwrap()
    .as_str()
    .unwrap()
    .to_string()
}

#[tokio::test]
async fn lanes_bars_and_details_for_invocations_from_the_form_and_from_outside() {
    let (alpha, beta) = (package("alpha"), package("beta"));
    let s = Serve::start(
        FNBOX,
        &[
            alpha.path().to_str().unwrap(),
            beta.path().to_str().unwrap(),
        ],
    );
    assert!(
        s.startup.iter().any(|l| l.contains("/ui")),
        "{:?}",
        s.startup
    );
    let mut b = browser().await;
    b.goto(&format!("{}/ui", s.url())).await.unwrap();
    b.wait_for(
        "document.getElementById('conn').classList.contains('on')",
        WAIT,
    )
    .await
    .unwrap();
    b.wait_for("document.querySelectorAll('.fn-stats').length === 2", WAIT)
        .await
        .unwrap();

    // From outside: a cold start (init bar) and the invocation (invoke bar) on alpha's lane.
    let outside = invoke(s.addr, "alpha", r#"{"n":1}"#, None).await;
    wait_outcome(&mut b, &outside, "success").await;
    let lane = b
        .eval("[...document.querySelectorAll('g.lane')].some(g => g.dataset.function === 'alpha')")
        .await
        .unwrap();
    assert_eq!(lane, true, "alpha has a lane");
    b.wait_for(&format!("{} !== null", bar(&outside, "init")), WAIT)
        .await
        .expect("the cold start's init bar carries the request that caused it");

    // From the page's form, on the other function: result, request id and log tail shown.
    let from_form = submit_form(&mut b, "beta", r#"{"from":"form"}"#, false).await;
    assert_ne!(from_form, outside);
    let body = text_of(&mut b, "invoke-body").await;
    assert!(body.contains(r#""from":"form""#), "{body}");
    let log = text_of(&mut b, "invoke-log").await;
    assert!(
        log.contains(&format!("[Function] handled {from_form}")),
        "{log}"
    );
    wait_outcome(&mut b, &from_form, "success").await;
    let lanes = b
        .eval("[...document.querySelectorAll('g.lane')].map(g => g.dataset.function + ':' + g.dataset.state).sort().join(',')")
        .await
        .unwrap();
    assert_eq!(lanes, "alpha:idle,beta:idle");

    // Asynchronous from the form: its bar appears when the queue runs it.
    let queued = submit_form(&mut b, "alpha", r#"{"from":"async"}"#, true).await;
    wait_outcome(&mut b, &queued, "success").await;

    // The detail panel of the outside invocation.
    click_bar(&mut b, &outside).await;
    assert_eq!(text_of(&mut b, "detail-request-id").await, outside);
    assert!(text_of(&mut b, "detail-outcome").await.contains("success"));
    assert!(text_of(&mut b, "detail-where")
        .await
        .starts_with("alpha / alpha-128-"));
    let billed = text_of(&mut b, "detail-billed").await;
    assert!(billed.ends_with(" ms") && billed != "– ms", "{billed}");
    assert!(text_of(&mut b, "detail-memory").await.contains("of 128 MB"));
    let lines = text_of(&mut b, "detail-lines").await;
    assert_eq!(lines, format!("[Function] handled {outside}"));
    let raw = text_of(&mut b, "detail-raw").await;
    for name in ["platform.start", "platform.runtimeDone", "platform.report"] {
        assert!(
            raw.contains(&format!(r#""name":"{name}""#)),
            "{name} missing: {raw}"
        );
    }
    assert!(raw.contains(&format!(r#""traceId":"{outside}""#)), "{raw}");

    // Per-function figures: alpha has two invocations, one cold start.
    b.wait_for(
        "document.querySelector('.fn-stats[data-function=\"alpha\"] .stat-invocations')?.textContent === '2'",
        WAIT,
    )
    .await
    .unwrap();
    let cold = b
        .eval("document.querySelector('.fn-stats[data-function=\"alpha\"] .stat-cold').textContent")
        .await
        .unwrap();
    assert_eq!(cold, "1");
    b.screenshot(&screenshot_path("timeline.png"))
        .await
        .unwrap();

    // The same through the API the page uses.
    let r = http::get(s.addr, "/api/invocations?function=alpha&phase=invoke")
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.text());
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [queued.clone(), outside.clone()], "newest first");
    let r = http::get(s.addr, "/api/instances").await.unwrap();
    let pods = r.json();
    assert_eq!(pods.as_array().unwrap().len(), 2, "{pods}");
    assert_eq!(pods[0]["memory_size_mb"], 128);
    let r = http::get(s.addr, "/api/invocations?status=nope")
        .await
        .unwrap();
    assert_eq!(r.code(), 400);
    assert!(
        r.text().contains("status 'nope' is not one of"),
        "{}",
        r.text()
    );
    let r = http::get(s.addr, "/api/invocations?function=nope")
        .await
        .unwrap();
    assert_eq!(r.code(), 404, "{}", r.text());
    assert!(r.text().contains("FSS.1051"), "{}", r.text());
    let r = http::get(s.addr, "/api/instances?bogus=1").await.unwrap();
    assert_eq!(r.code(), 400);
    assert!(
        r.text().contains("unknown query parameter 'bogus'"),
        "{}",
        r.text()
    );

    // Stopping with the page still open: its live stream ends at once, the drain does not wait.
    let (code, err) = s.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !err.contains("still busy after the drain budget"),
        "the open page held the shutdown: {err}"
    );
    drop(b);
}

#[tokio::test]
async fn a_timeout_shows_as_a_timeout_and_a_crash_as_a_crash() {
    let (alpha, beta) = (package("alpha"), package("beta"));
    let s = Serve::start(
        FNBOX,
        &[
            alpha.path().to_str().unwrap(),
            beta.path().to_str().unwrap(),
        ],
    );
    let mut b = browser().await;
    b.goto(&format!("{}/ui", s.url())).await.unwrap();
    b.wait_for(
        "document.getElementById('conn').classList.contains('on')",
        WAIT,
    )
    .await
    .unwrap();

    let (slow, crash) = tokio::join!(
        invoke(s.addr, "alpha", r#"{"sleep":1}"#, None),
        invoke(s.addr, "beta", r#"{"crash":1}"#, None)
    );
    wait_outcome(&mut b, &slow, "timeout").await;
    wait_outcome(&mut b, &crash, "crash").await;

    click_bar(&mut b, &slow).await;
    let outcome = text_of(&mut b, "detail-outcome").await;
    assert!(outcome.starts_with("timeout status timeout"), "{outcome}");
    assert!(text_of(&mut b, "detail-lines")
        .await
        .contains(&format!("[Function] sleeping on {slow}")));
    click_bar(&mut b, &crash).await;
    let outcome = text_of(&mut b, "detail-outcome").await;
    assert!(
        outcome.starts_with("crash status failure · Runtime.ExitError"),
        "{outcome}"
    );
    // Both instances were destroyed: their lanes show it.
    b.wait_for(
        "[...document.querySelectorAll('g.lane')].filter(g => g.dataset.state === 'dead').length === 2",
        WAIT,
    )
    .await
    .unwrap();
    b.screenshot(&screenshot_path("faults.png")).await.unwrap();

    let r = http::get(s.addr, "/api/invocations?status=timeout")
        .await
        .unwrap();
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["request_id"], slow.as_str());
    assert_eq!(list[0]["outcome"], "timeout");
    let r = http::get(s.addr, "/api/invocations?status=crash")
        .await
        .unwrap();
    assert_eq!(r.json()[0]["error_type"], "Runtime.ExitError");
    drop(b);
    s.stop();
}

#[tokio::test]
async fn with_a_token_the_page_asks_for_it_once() {
    let alpha = package("alpha");
    let s = Serve::start(
        FNBOX,
        &[alpha.path().to_str().unwrap(), "--token", "s3cret-token"],
    );
    // The page itself is public (it holds no data); the API is not.
    let r = http::get(s.addr, "/ui").await.unwrap();
    assert_eq!(r.code(), 200);
    assert!(r.text().contains("<title>fnbox timeline</title>"));
    for path in [
        "/api/instances",
        "/api/invocations",
        "/api/stats",
        "/api/events",
    ] {
        assert_eq!(http::get(s.addr, path).await.unwrap().code(), 401, "{path}");
    }
    // ?token= is accepted on the live stream only.
    let r = http::get(s.addr, "/api/invocations?token=s3cret-token")
        .await
        .unwrap();
    assert_eq!(r.code(), 401);
    let r = http::request(
        s.addr,
        "GET",
        "/api/instances",
        &[("X-Auth-Token", "s3cret-token")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.code(), 200);

    let mut b = browser().await;
    b.goto(&format!("{}/ui", s.url())).await.unwrap();
    b.wait_for("!document.getElementById('token-form').hidden", WAIT)
        .await
        .unwrap();
    // A wrong token is refused and asked again.
    b.eval("document.getElementById('token').value = 'wrong'; document.getElementById('token-form').requestSubmit(); true")
        .await
        .unwrap();
    b.wait_for(
        "document.getElementById('token-error').textContent.includes('refused')",
        WAIT,
    )
    .await
    .unwrap();
    b.eval("document.getElementById('token').value = 's3cret-token'; document.getElementById('token-form').requestSubmit(); true")
        .await
        .unwrap();
    b.wait_for(
        "document.getElementById('conn').classList.contains('on')",
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(
        b.eval("document.getElementById('token-form').hidden")
            .await
            .unwrap(),
        true
    );
    // The form sends the token with the invocation, the stream shows it.
    let id = submit_form(&mut b, "alpha", r#"{"x":1}"#, false).await;
    assert_eq!(
        b.eval("document.getElementById('invoke-result').dataset.status")
            .await
            .unwrap(),
        "200"
    );
    wait_outcome(&mut b, &id, "success").await;
    let outside = invoke(s.addr, "alpha", "{}", Some("s3cret-token")).await;
    wait_outcome(&mut b, &outside, "success").await;
    drop(b);
    s.stop();
}

/// The README's walk-through: `fnbox serve examples/telemetry`, open `/ui`, invoke from the
/// page, watch the cold start, the invocation and the telemetry arrive.
#[tokio::test]
async fn the_telemetry_example_shows_its_cold_start_invocation_and_telemetry() {
    let out = tempfile::tempdir().unwrap();
    let pkg = fnbox_testkit::recorder::telemetry_example(FNBOX, out.path(), "");
    fnbox_testkit::recorder::wait_for_free_ports();
    let s = Serve::start(FNBOX, &[pkg.path().to_str().unwrap()]);
    let mut b = browser().await;
    b.goto(&format!("{}/ui", s.url())).await.unwrap();
    b.wait_for(
        "document.getElementById('conn').classList.contains('on')",
        WAIT,
    )
    .await
    .unwrap();
    b.eval("document.getElementById('range').value = '10'; true")
        .await
        .unwrap();

    let id = submit_form(&mut b, "telemetry-demo", r#"{"hello":"timeline"}"#, false).await;
    wait_outcome(&mut b, &id, "success").await;
    b.wait_for(&format!("{} !== null", bar(&id, "init")), WAIT)
        .await
        .unwrap();
    click_bar(&mut b, &id).await;
    // The recorder prints an [Extension] line when a batch reaches it, after the report: the
    // instance's last invocation gets it.
    b.wait_for(
        "document.getElementById('detail-lines').textContent.includes('[Extension] received')",
        WAIT,
    )
    .await
    .unwrap();
    let lines = text_of(&mut b, "detail-lines").await;
    assert!(lines.contains("[Function]"), "{lines}");
    // Deliveries to the recorder, live from the instance's subscriber counters.
    b.wait_for(
        "/[1-9][0-9]* delivered/.test(document.querySelector('.fn-stats[data-function=\"telemetry-demo\"] .stat-telemetry').textContent)",
        WAIT,
    )
    .await
    .unwrap();
    b.screenshot(&screenshot_path("telemetry-example.png"))
        .await
        .unwrap();

    // The cold start carries the extension's registration line.
    let r = http::get(s.addr, "/api/invocations?phase=init")
        .await
        .unwrap();
    let init = &r.json()[0];
    assert_eq!(init["request_id"], id.as_str(), "{init}");
    let lines = init["lines"].to_string();
    assert!(lines.contains("[Extension] registered as"), "{lines}");
    drop(b);
    s.stop();
}

#[test]
fn history_flags_out_of_range_are_refused_naming_the_flag() {
    let alpha = package("alpha");
    for (flag, value) in [
        ("--ui-history", "0"),
        ("--ui-history", "soon"),
        ("--ui-max-invocations", "0"),
    ] {
        let out = std::process::Command::new(FNBOX)
            .args(["serve", alpha.path().to_str().unwrap(), flag, value])
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}
