//! The worker against a scripted invoker: completion, retries, throttling, event age,
//! concurrency, stopping.

#[macro_use]
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{fast, is, wait_final, worker_settings, Fake, Queue, Running};
use fnbox_async::notification::Condition;
use fnbox_async::{
    AsyncState, AsyncStore, AttemptOutcome, InvokeAttempt, InvokeSource, ListFilter,
    INTERRUPTED_ERROR,
};
use tokio::time::Instant;

fn error_body(msg: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"errorType\":\"E\",\"errorMessage\":\"{msg}\"}}"
    ))
}

async fn accepted_invocation_runs_to_completion(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    store
        .enqueue(
            "hello",
            "r1",
            Bytes::from_static(b"{\"n\":1}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!(s.state, AsyncState::Succeeded);
    assert_eq!(s.condition, Some(Condition::Success));
    assert_eq!(
        s.result.as_deref(),
        Some(&b"{\"n\":1}"[..]),
        "the function's answer"
    );
    assert_eq!(s.attempts, 1);
    assert_eq!(s.fg_status(), "SUCCESS");
    assert_eq!(s.history.len(), 1);
    assert_eq!(s.history[0].outcome, AttemptOutcome::Success);
    assert!(s.finished_at_ms.unwrap() >= s.enqueued_at_ms);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].function.as_str(), calls[0].request_id.as_str()),
        ("hello", "r1")
    );
    w.stop().await;
    assert_eq!(fake.calls().len(), 1, "never run again");
}

async fn failed_attempts_are_retried_with_backoff_until_success(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.script(
        "r1",
        [
            InvokeAttempt::FunctionError(error_body("first")),
            InvokeAttempt::Fault {
                error_type: "Sandbox.Timedout".into(),
                message: "timed out after 3s".into(),
            },
        ],
    );
    let w = Running::start(&store, &fake, worker_settings(fast(3)));
    store
        .enqueue(
            "f",
            "r1",
            Bytes::from_static(b"{}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!(s.state, AsyncState::Succeeded);
    assert_eq!(s.attempts, 3);
    let outcomes: Vec<_> = s.history.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::FunctionError,
            AttemptOutcome::Fault,
            AttemptOutcome::Success
        ]
    );
    assert_eq!(
        s.history[0].detail.as_deref(),
        Some("function error: first")
    );
    assert_eq!(
        s.history[1].detail.as_deref(),
        Some("Sandbox.Timedout: timed out after 3s")
    );
    // Backoff: 50 ms, then 100 ms (fast()).
    let calls = fake.calls_for("r1");
    assert_eq!(calls.len(), 3);
    let gap1 = calls[1].at - calls[0].at;
    let gap2 = calls[2].at - calls[1].at;
    // (Retry times are wall-clock milliseconds: allow for the truncation.)
    assert!(gap1 >= Duration::from_millis(48), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(98), "{gap2:?}");
    w.stop().await;
}

async fn failed_attempts_give_up_after_max_attempts(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.always("bad", InvokeAttempt::FunctionError(error_body("always")));
    let w = Running::start(&store, &fake, worker_settings(fast(3)));
    store
        .enqueue(
            "bad",
            "r1",
            Bytes::from_static(b"{}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!(s.state, AsyncState::Failed);
    assert_eq!(s.condition, Some(Condition::RetriesExhausted));
    assert_eq!(s.attempts, 3);
    assert_eq!(s.fg_status(), "FAIL");
    assert_eq!(s.error.as_deref(), Some(&error_body("always")[..]));
    assert_eq!(s.last_error.as_deref(), Some("function error: always"));
    assert_eq!(s.to_fg_list_entry()["error_code"], 500);
    // Give the worker a moment: nothing more happens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.calls_for("r1").len(), 3);
    w.stop().await;
}

async fn functiongraph_default_does_not_retry_function_errors(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.always("bad", InvokeAttempt::FunctionError(error_body("once")));
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    store
        .enqueue("bad", "r1", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!((s.state, s.attempts), (AsyncState::Failed, 1));
    w.stop().await;
}

async fn throttled_attempts_are_retried_without_consuming_attempts(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.script("r1", std::iter::repeat_n(InvokeAttempt::Throttled, 5));
    // One attempt allowed: the five throttles must not use it.
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    store
        .enqueue("f", "r1", Bytes::from_static(b"x"), InvokeSource::Lambda)
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!(s.state, AsyncState::Succeeded);
    assert_eq!(s.attempts, 1);
    assert_eq!(s.throttles, 5);
    assert_eq!(fake.calls_for("r1").len(), 6);
    let throttled = s
        .history
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Throttled)
        .count();
    assert_eq!(throttled, 5);
    w.stop().await;
}

async fn throttled_until_max_event_age_is_discarded(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.always("busy", InvokeAttempt::Throttled);
    let mut settings = fast(1);
    settings.max_event_age = Duration::from_millis(600);
    let w = Running::start(&store, &fake, worker_settings(settings));
    let t0 = Instant::now();
    store
        .enqueue("busy", "r1", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!(s.state, AsyncState::Failed);
    assert_eq!(s.condition, Some(Condition::EventAgeExceeded));
    assert_eq!(s.fg_status(), "DISCARD");
    assert_eq!(s.attempts, 0, "throttles are not attempts");
    let discarded = store
        .list(ListFilter::default().with_fg_status("DISCARD").unwrap())
        .await
        .unwrap();
    assert_eq!(discarded.count, 1);
    assert_eq!(
        discarded.to_fg_json()["invocations"][0]["status"],
        "DISCARD"
    );
    let failed = store
        .list(ListFilter::default().with_fg_status("FAIL").unwrap())
        .await
        .unwrap();
    assert_eq!(failed.count, 0, "FAIL excludes DISCARD");
    assert!(ListFilter::default().with_fg_status("DONE").is_none());
    assert!(s.throttles >= 2, "retried while young: {}", s.throttles);
    // Given up when the next retry would have come too late, not long after the age ran out.
    assert!(t0.elapsed() < Duration::from_secs(5));
    w.stop().await;
}

async fn events_older_than_max_age_are_not_attempted(q: Queue) {
    let (store, _q) = q.open().await;
    store
        .enqueue("f", "old", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let fake = Fake::new();
    let mut settings = fast(3);
    settings.max_event_age = Duration::from_millis(100);
    let w = Running::start(&store, &fake, worker_settings(settings));
    let s = wait_final(&store, "old").await;
    assert_eq!(s.condition, Some(Condition::EventAgeExceeded));
    assert_eq!(s.attempts, 0);
    assert!(fake.calls().is_empty(), "never invoked");
    w.stop().await;
}

async fn unknown_function_fails_at_once(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.always("gone", InvokeAttempt::UnknownFunction);
    let w = Running::start(&store, &fake, worker_settings(fast(3)));
    store
        .enqueue("gone", "r1", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!(s.condition, Some(Condition::FunctionNotFound));
    assert_eq!(s.attempts, 1);
    assert_eq!(s.to_fg_list_entry()["error_code"], 404);
    w.stop().await;
}

async fn concurrency_is_bounded_per_function(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.delay(Duration::from_millis(40));
    let mut settings = worker_settings(fast(1));
    settings.default.max_concurrency = 3;
    let mut other = fast(1);
    other.max_concurrency = 1;
    settings.functions.insert("narrow".into(), other);
    let w = Running::start(&store, &fake, settings);
    for i in 0..15 {
        store
            .enqueue(
                "wide",
                &format!("w{i}"),
                Bytes::new(),
                InvokeSource::FunctionGraph,
            )
            .await
            .unwrap();
    }
    for i in 0..3 {
        store
            .enqueue(
                "narrow",
                &format!("n{i}"),
                Bytes::new(),
                InvokeSource::FunctionGraph,
            )
            .await
            .unwrap();
    }
    for i in 0..15 {
        wait_final(&store, &format!("w{i}")).await;
    }
    for i in 0..3 {
        wait_final(&store, &format!("n{i}")).await;
    }
    let peak = fake.peak("wide");
    assert!(peak <= 3, "never more than max_concurrency: {peak}");
    assert!(peak >= 2, "but in parallel: {peak}");
    assert_eq!(fake.peak("narrow"), 1);
    assert_eq!(fake.calls().len(), 18);
    w.stop().await;
}

#[tokio::test]
async fn stopping_records_in_flight_attempts_as_interrupted_and_a_restart_finishes_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::open(dir.path()).unwrap();
    let fake = Fake::new();
    // An attempt that would take an hour: a stop that waited for it would hang.
    fake.delay(Duration::from_secs(3600));
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    store
        .enqueue("slow", "r1", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    common::wait_for(&store, "r1", is(AsyncState::Running)).await;
    tokio::time::timeout(Duration::from_secs(60), w.stop())
        .await
        .expect("a stop does not wait for the attempt");
    let s = store.status("r1").await.unwrap().unwrap();
    assert_eq!(s.state, AsyncState::Queued);
    assert_eq!((s.attempts, s.interrupts), (1, 1));
    assert_eq!(s.last_error.as_deref(), Some(INTERRUPTED_ERROR));
    drop(store);

    // Next start: nothing left running; the attempt runs again and completes, although
    // max_attempts is 1 (an interruption is fnbox's failure, not the function's).
    let store = AsyncStore::open(dir.path()).unwrap();
    assert_eq!(store.recovered_at_open(), 0);
    let fake = Fake::new();
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    let s = wait_final(&store, "r1").await;
    assert_eq!(s.state, AsyncState::Succeeded);
    assert_eq!(s.attempts, 2);
    let outcomes: Vec<_> = s.history.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [AttemptOutcome::Interrupted, AttemptOutcome::Success]
    );
    w.stop().await;
}

async fn settings_can_change_while_running(q: Queue) {
    let (store, _q) = q.open().await;
    let fake = Fake::new();
    fake.script("r1", [InvokeAttempt::FunctionError(error_body("x"))]);
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    w.worker.set_function("f", fast(2)).unwrap();
    assert_eq!(w.worker.function_settings("f").max_attempts, 2);
    assert!(w.worker.set_function("f", fast(0)).is_err(), "validated");
    store
        .enqueue("f", "r1", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    let s = wait_final(&store, "r1").await;
    assert_eq!((s.state, s.attempts), (AsyncState::Succeeded, 2));
    w.stop().await;
}

both!(
    accepted_invocation_runs_to_completion,
    failed_attempts_are_retried_with_backoff_until_success,
    failed_attempts_give_up_after_max_attempts,
    functiongraph_default_does_not_retry_function_errors,
    throttled_attempts_are_retried_without_consuming_attempts,
    throttled_until_max_event_age_is_discarded,
    events_older_than_max_age_are_not_attempted,
    unknown_function_fails_at_once,
    concurrency_is_bounded_per_function,
    settings_can_change_while_running,
);
