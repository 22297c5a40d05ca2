//! The worker: takes due invocations off the queue, runs them through an [`Invoker`], records
//! every attempt, retries, and delivers destination notifications.
//!
//! # Design
//! - **One scheduler task, one task per attempt.** The scheduler looks at the queue when woken
//!   (an enqueue, a finished attempt or delivery) or when the earliest retry is due, and at
//!   least every `poll_interval`. For each function below its `max_concurrency` it claims up to
//!   the free slots (one transaction marks them `running`) and spawns one task per claimed
//!   invocation on the caller's [`TaskTracker`]. Functions at their limit are skipped until one
//!   of their attempts ends, so a busy function never blocks another and the pool is never
//!   flooded.
//! - **Decisions are pure.** `decide` turns a claimed row, the attempt's result, the
//!   function's settings and the time into the recorded end of the attempt; the task then
//!   commits it with [`AsyncStore`]'s single transaction per attempt.
//! - **Stopping.** On cancellation the scheduler stops claiming. Attempts in flight are
//!   abandoned (their invoke future is dropped) and recorded as interrupted, exactly as a crash
//!   would have them after a restart; deliveries in flight stay pending and are sent again by
//!   the next fnbox on this data dir. Every task ends on its own; wait for the tracker.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::SettingsError;
use crate::notification::{Condition, Notification, Response};
use crate::settings::{DeliverySettings, FunctionSettings, WorkerSettings};
use crate::store::{
    now_ms, AsyncStore, AttemptEnd, AttemptOutcome, Claimed, DueDelivery, NewDelivery, Transition,
};

/// The result of one attempt, as the invoker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvokeAttempt {
    /// The function answered; its response body.
    Success(Bytes),
    /// The function reported an error (FunctionGraph `/error`, a handler exception); the error
    /// body. Counts as a failed attempt.
    FunctionError(Bytes),
    /// No instance was free (the pool answered FSS.0429 / saturated, or is restarting). Retried
    /// without consuming an attempt until the event is too old.
    Throttled,
    /// The environment failed (timeout, out of memory, runtime or extension crash, init
    /// failure). Counts as a failed attempt.
    Fault {
        /// `errorType`, e.g. `Sandbox.Timedout`.
        error_type: String,
        /// Message, e.g. `invocation timed out after 3s`.
        message: String,
    },
    /// The function does not exist (any more). Fails the invocation at once.
    UnknownFunction,
}

/// Runs one attempt of an asynchronous invocation. The serve crate implements it over the
/// engine's `Pool` with `InvokeType::Async`; tests use fakes.
pub trait Invoker: Send + Sync + 'static {
    /// Runs `function` with `payload` under `request_id`. Must not panic; report failures as
    /// [`InvokeAttempt`] variants.
    fn invoke(
        &self,
        function: &str,
        request_id: &str,
        payload: Bytes,
    ) -> impl Future<Output = InvokeAttempt> + Send;
}

/// A running worker. Dropping the handle does not stop it: cancel the token given to
/// [`AsyncWorker::spawn`] and wait for the tracker. Run one worker per store: a second one
/// would never run an invocation twice (claims are transactional) but would double the
/// per-function concurrency.
#[derive(Clone)]
pub struct AsyncWorker {
    shared: Arc<Shared>,
}

struct Shared {
    store: AsyncStore,
    settings: RwLock<WorkerSettings>,
    /// Attempts in flight per function.
    in_flight: Mutex<HashMap<String, u32>>,
    /// Notifications being POSTed.
    delivering: Mutex<HashSet<String>>,
}

/// How often finished invocations past their retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// Tries to record the end of an attempt before giving up (the row then stays `running` and
/// is recovered at the next start).
const FINISH_TRIES: u32 = 5;

impl AsyncWorker {
    /// Starts the scheduler on `tracker`; it stops when `cancel` fires.
    pub fn spawn<I: Invoker>(
        store: AsyncStore,
        invoker: I,
        settings: WorkerSettings,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Result<AsyncWorker, SettingsError> {
        settings.validate()?;
        let shared = Arc::new(Shared {
            store,
            settings: RwLock::new(settings),
            in_flight: Mutex::new(HashMap::new()),
            delivering: Mutex::new(HashSet::new()),
        });
        let invoker = Arc::new(invoker);
        tracker.spawn(schedule(shared.clone(), invoker, tracker.clone(), cancel));
        Ok(AsyncWorker { shared })
    }

    /// Sets (or replaces) one function's settings, e.g. after a deploy.
    pub fn set_function(
        &self,
        function: &str,
        settings: FunctionSettings,
    ) -> Result<(), SettingsError> {
        settings.validate()?;
        self.shared
            .settings
            .write()
            .expect("settings lock")
            .functions
            .insert(function.to_string(), settings);
        self.shared.store.wake();
        Ok(())
    }

    /// The settings `function` runs with.
    pub fn function_settings(&self, function: &str) -> FunctionSettings {
        self.shared
            .settings
            .read()
            .expect("settings lock")
            .for_function(function)
            .clone()
    }

    /// Attempts in flight now, all functions.
    pub fn in_flight(&self) -> u32 {
        self.shared
            .in_flight
            .lock()
            .expect("in-flight lock")
            .values()
            .sum()
    }
}

async fn schedule<I: Invoker>(
    shared: Arc<Shared>,
    invoker: Arc<I>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    let store = shared.store.clone();
    let mut last_prune: Option<tokio::time::Instant> = None;
    let mut last_upkeep: Option<tokio::time::Instant> = None;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        // Shared queues: keep this node's leases alive, take over those of dead nodes.
        if let Some(every) = store.backend().maintenance_interval() {
            if last_upkeep.is_none_or(|t| t.elapsed() >= every) {
                last_upkeep = Some(tokio::time::Instant::now());
                match store.backend().maintain(now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        count = n,
                        "async attempts of a node that stopped (lease expired) were put back in the queue"
                    ),
                    Err(e) => tracing::error!(error = %e, "cannot renew async attempt leases"),
                }
            }
        }
        let (poll, delivery, retention) = {
            let s = shared.settings.read().expect("settings lock");
            (s.poll_interval, s.delivery.clone(), s.retention)
        };
        let now = now_ms();
        let mut next_due: Option<i64> = None;
        let mut failed = false;

        match store.backend().queued_functions().await {
            Ok(functions) => {
                for (function, earliest) in functions {
                    let settings = shared
                        .settings
                        .read()
                        .expect("settings lock")
                        .for_function(&function)
                        .clone();
                    let running = shared.running(&function);
                    if running >= settings.max_concurrency {
                        continue; // woken when one of its attempts ends
                    }
                    if earliest > now {
                        next_due = Some(next_due.map_or(earliest, |n| n.min(earliest)));
                        continue;
                    }
                    let free = settings.max_concurrency - running;
                    match store.backend().claim(function.clone(), now, free).await {
                        Ok(rows) => {
                            for row in rows {
                                shared.add_running(&row.function);
                                tracker.spawn(attempt(
                                    shared.clone(),
                                    invoker.clone(),
                                    settings.clone(),
                                    row,
                                    cancel.clone(),
                                ));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, %function, "cannot claim async invocations");
                            failed = true;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the async invocation queue");
                failed = true;
            }
        }

        let free = delivery
            .concurrency
            .saturating_sub(shared.delivering.lock().expect("delivering lock").len());
        if free > 0 {
            let skip: Vec<String> = shared
                .delivering
                .lock()
                .expect("delivering lock")
                .iter()
                .cloned()
                .collect();
            match store.backend().due_deliveries(now, free, skip).await {
                Ok((due, next)) => {
                    for d in due {
                        shared
                            .delivering
                            .lock()
                            .expect("delivering lock")
                            .insert(d.request_id.clone());
                        tracker.spawn(deliver(
                            shared.clone(),
                            d,
                            delivery.clone(),
                            tracker.clone(),
                            cancel.clone(),
                        ));
                    }
                    if let Some(n) = next {
                        next_due = Some(next_due.map_or(n, |m| m.min(n)));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read pending destination notifications");
                    failed = true;
                }
            }
        }

        if let Some(keep) = retention {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_INTERVAL) {
                last_prune = Some(tokio::time::Instant::now());
                match store.backend().prune(now - keep.as_millis() as i64).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "old async invocations pruned"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune old async invocations"),
                }
            }
        }

        let mut wait = if failed {
            poll
        } else {
            next_due
                .map(|t| Duration::from_millis((t - now_ms()).max(0) as u64))
                .unwrap_or(poll)
                .min(poll)
        };
        if let Some(every) = store.backend().maintenance_interval() {
            wait = wait.min(every);
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = store.woken() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::debug!("async worker stopped");
}

impl Shared {
    fn running(&self, function: &str) -> u32 {
        *self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get(function)
            .unwrap_or(&0)
    }

    fn add_running(&self, function: &str) {
        *self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .entry(function.to_string())
            .or_default() += 1;
    }

    fn done_running(&self, function: &str) {
        let mut map = self.in_flight.lock().expect("in-flight lock");
        if let Some(n) = map.get_mut(function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(function);
            }
        }
    }
}

/// One attempt of one claimed invocation, from the pre-checks to the recorded end.
async fn attempt<I: Invoker>(
    shared: Arc<Shared>,
    invoker: Arc<I>,
    settings: FunctionSettings,
    row: Claimed,
    cancel: CancellationToken,
) {
    let result = if cancel.is_cancelled() {
        Attempted::NotStarted
    } else if let Some(pre) = precheck(&row, &settings, now_ms()) {
        pre
    } else {
        tokio::select! {
            // A stop abandons the attempt; it is recorded as interrupted and retried later.
            _ = cancel.cancelled() => Attempted::Interrupted,
            r = invoker.invoke(&row.function, &row.request_id, row.payload.clone()) => Attempted::Ran(r),
        }
    };
    let end = decide(&row, result, &settings, now_ms());
    let mut tries = 0;
    loop {
        tries += 1;
        match shared.store.backend().finish(end.clone()).await {
            Ok(()) => {
                tracing::debug!(
                    request_id = %row.request_id,
                    function = %row.function,
                    transition = ?end.transition,
                    "async attempt recorded"
                );
                break;
            }
            Err(e) if tries < FINISH_TRIES && !cancel.is_cancelled() => {
                tracing::warn!(error = %e, request_id = %row.request_id, "cannot record async attempt; retrying");
                tokio::time::sleep(Duration::from_millis(200 << tries)).await;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    request_id = %row.request_id,
                    "cannot record async attempt; it stays running and is retried at the next start"
                );
                break;
            }
        }
    }
    shared.done_running(&row.function);
    shared.store.wake();
}

/// What happened to a claimed invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attempted {
    /// The invoker ran and answered.
    Ran(InvokeAttempt),
    /// fnbox stopped while the invoker ran.
    Interrupted,
    /// fnbox was stopping before the attempt began: released without counting.
    NotStarted,
    /// Not attempted: the event is older than its maximum age.
    TooOld,
    /// Not attempted: the attempts are used up (too many interrupted attempts, or settings
    /// lowered since the last attempt).
    Exhausted,
}

fn precheck(row: &Claimed, s: &FunctionSettings, now: i64) -> Option<Attempted> {
    if now > deadline(row, s) {
        Some(Attempted::TooOld)
    } else if row.attempts - row.interrupts >= s.max_attempts
        || row.interrupts >= s.max_interrupted_attempts
    {
        Some(Attempted::Exhausted)
    } else {
        None
    }
}

fn deadline(row: &Claimed, s: &FunctionSettings) -> i64 {
    row.enqueued_at_ms
        .saturating_add(s.max_event_age.as_millis() as i64)
}

fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({"errorType": error_type, "errorMessage": message}))
            .expect("JSON"),
    )
}

/// The message of a function's error body (`errorMessage`, else the body itself, shortened).
fn error_message(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("errorMessage").or_else(|| v.get("error_msg")))
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut msg = msg;
    if msg.len() > 1024 {
        let mut cut = 1024;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    format!("function error: {msg}")
}

/// Turns a claimed row and what happened to it into the recorded end of the attempt: the
/// next state, the counts, the history entry and the destination notification. Pure.
pub(crate) fn decide(row: &Claimed, what: Attempted, s: &FunctionSettings, now: i64) -> AttemptEnd {
    let mut end = AttemptEnd {
        request_id: row.request_id.clone(),
        outcome: None,
        attempts: row.attempts,
        throttles: row.throttles,
        interrupts: row.interrupts,
        started_at_ms: row.started_at_ms,
        ended_at_ms: now,
        last_error: None,
        error: None,
        transition: Transition::Retry {
            next_attempt_at_ms: now,
        },
        delivery: None,
    };
    // A failed attempt: retry after the backoff, unless attempts or time are used up.
    let retry_or_fail = |end: &mut AttemptEnd| {
        end.transition = if end.attempts - end.interrupts >= s.max_attempts {
            Transition::Failed {
                condition: Condition::RetriesExhausted,
            }
        } else {
            let next = now.saturating_add(s.retry_backoff.delay(end.attempts).as_millis() as i64);
            if next > deadline(row, s) {
                Transition::Failed {
                    condition: Condition::EventAgeExceeded,
                }
            } else {
                Transition::Retry {
                    next_attempt_at_ms: next,
                }
            }
        };
    };
    let mut response: Option<Response> = None;
    match what {
        Attempted::Ran(InvokeAttempt::Success(body)) => {
            end.outcome = Some(AttemptOutcome::Success);
            end.attempts += 1;
            response = Some(Response {
                status_code: 200,
                function_error: None,
                payload: body.clone(),
            });
            end.transition = Transition::Succeeded { result: body };
        }
        Attempted::Ran(InvokeAttempt::FunctionError(body)) => {
            end.outcome = Some(AttemptOutcome::FunctionError);
            end.attempts += 1;
            end.last_error = Some(error_message(&body));
            end.error = Some(body.clone());
            response = Some(Response {
                status_code: 500,
                function_error: Some(String::new()),
                payload: body,
            });
            retry_or_fail(&mut end);
        }
        Attempted::Ran(InvokeAttempt::Fault {
            error_type,
            message,
        }) => {
            end.outcome = Some(AttemptOutcome::Fault);
            end.attempts += 1;
            end.last_error = Some(format!("{error_type}: {message}"));
            let body = error_body(&error_type, &message);
            end.error = Some(body.clone());
            response = Some(Response {
                status_code: 500,
                function_error: Some(error_type),
                payload: body,
            });
            retry_or_fail(&mut end);
        }
        Attempted::Ran(InvokeAttempt::UnknownFunction) => {
            end.outcome = Some(AttemptOutcome::FunctionNotFound);
            end.attempts += 1;
            let message = format!("function {} not found", row.function);
            let body = Bytes::from(
                serde_json::to_vec(&json!({"error_code": "FSS.1051", "error_msg": message}))
                    .expect("JSON"),
            );
            end.last_error = Some(message);
            end.error = Some(body.clone());
            response = Some(Response {
                status_code: 404,
                function_error: Some(String::new()),
                payload: body,
            });
            end.transition = Transition::Failed {
                condition: Condition::FunctionNotFound,
            };
        }
        Attempted::Ran(InvokeAttempt::Throttled) => {
            end.outcome = Some(AttemptOutcome::Throttled);
            end.throttles += 1;
            end.last_error = Some("throttled: no free instance".into());
            let next =
                now.saturating_add(s.throttle_backoff.delay(end.throttles).as_millis() as i64);
            end.transition = if next > deadline(row, s) {
                Transition::Failed {
                    condition: Condition::EventAgeExceeded,
                }
            } else {
                Transition::Retry {
                    next_attempt_at_ms: next,
                }
            };
        }
        Attempted::Interrupted => {
            end.outcome = Some(AttemptOutcome::Interrupted);
            end.attempts += 1;
            end.interrupts += 1;
            end.last_error = Some(crate::INTERRUPTED_ERROR.into());
            end.error = Some(error_body("fnbox.Interrupted", crate::INTERRUPTED_ERROR));
            end.transition = if end.interrupts >= s.max_interrupted_attempts {
                Transition::Failed {
                    condition: Condition::RetriesExhausted,
                }
            } else {
                Transition::Retry {
                    next_attempt_at_ms: now,
                }
            };
        }
        Attempted::NotStarted => {}
        Attempted::TooOld => {
            end.transition = Transition::Failed {
                condition: Condition::EventAgeExceeded,
            };
        }
        Attempted::Exhausted => {
            end.transition = Transition::Failed {
                condition: Condition::RetriesExhausted,
            };
        }
    }

    let target = match &end.transition {
        Transition::Succeeded { .. } => s
            .destinations
            .on_success
            .as_ref()
            .map(|u| ("on_success", u)),
        Transition::Failed { .. } => s
            .destinations
            .on_failure
            .as_ref()
            .map(|u| ("on_failure", u)),
        Transition::Retry { .. } => None,
    };
    if let Some((kind, url)) = target {
        let condition = match &end.transition {
            Transition::Failed { condition } => *condition,
            _ => Condition::Success,
        };
        if response.is_none() || end.outcome == Some(AttemptOutcome::Throttled) {
            // No answer from this attempt: report the last failure stored on the row.
            response = if let Some(body) = &row.error {
                Some(Response {
                    status_code: 500,
                    function_error: Some(String::new()),
                    payload: body.clone(),
                })
            } else if let Some(msg) = &row.last_error {
                Some(Response {
                    status_code: 500,
                    function_error: Some(String::new()),
                    payload: error_body("fnbox.Error", msg),
                })
            } else if end.throttles > 0 {
                Some(Response {
                    status_code: 429,
                    function_error: Some(String::new()),
                    payload: error_body("fnbox.Throttled", "no free instance"),
                })
            } else {
                None
            };
        }
        let urn = s.function_urn.as_deref().unwrap_or(&row.function);
        let body = Notification {
            timestamp: chrono::DateTime::from_timestamp_millis(now).unwrap_or_default(),
            request_id: &row.request_id,
            function_urn: urn,
            condition,
            attempts: end.attempts,
            request_payload: &row.payload,
            response,
        }
        .render(s.notification);
        end.delivery = Some(NewDelivery {
            kind,
            url: url.clone(),
            body: Bytes::from(body),
        });
    }
    end
}

/// One POST of one notification, recorded.
async fn deliver(
    shared: Arc<Shared>,
    d: DueDelivery,
    settings: DeliverySettings,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    let posted = tokio::select! {
        // Left pending: the next fnbox on this data dir sends it again.
        _ = cancel.cancelled() => None,
        r = crate::delivery::post(&d.url, d.body.clone(), settings.timeout, &tracker) => Some(r),
    };
    if let Some(result) = posted {
        let attempts = d.attempts + 1;
        let next = match &result {
            Ok(_) => None,
            Err(_) if attempts >= settings.max_attempts => None,
            Err(_) => Some(now_ms() + settings.backoff.delay(attempts).as_millis() as i64),
        };
        match &result {
            Ok(status) => {
                tracing::debug!(request_id = %d.request_id, url = %d.url, status, "destination notified")
            }
            Err(e) if next.is_some() => {
                tracing::info!(request_id = %d.request_id, url = %d.url, error = %e, attempts, "destination notification failed; will retry")
            }
            Err(e) => {
                tracing::warn!(request_id = %d.request_id, url = %d.url, error = %e, attempts, "destination notification failed; giving up")
            }
        }
        if let Err(e) = shared
            .store
            .backend()
            .delivery_done(d.request_id.clone(), attempts, result.map(|_| ()), next)
            .await
        {
            tracing::error!(error = %e, request_id = %d.request_id, "cannot record destination delivery");
        }
    }
    shared
        .delivering
        .lock()
        .expect("delivering lock")
        .remove(&d.request_id);
    shared.store.wake();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Backoff;

    fn row(attempts: u32, throttles: u32, enqueued_at_ms: i64) -> Claimed {
        Claimed {
            request_id: "r1".into(),
            function: "f".into(),
            payload: Bytes::from_static(b"{\"k\":1}"),
            attempts,
            throttles,
            interrupts: 0,
            enqueued_at_ms,
            started_at_ms: enqueued_at_ms,
            last_error: None,
            error: None,
        }
    }

    fn settings(max_attempts: u32) -> FunctionSettings {
        FunctionSettings {
            max_attempts,
            max_event_age: Duration::from_secs(3600),
            retry_backoff: Backoff::doubling(Duration::from_secs(60), Duration::from_secs(300)),
            throttle_backoff: Backoff::doubling(Duration::from_secs(1), Duration::from_secs(300)),
            ..FunctionSettings::functiongraph()
        }
    }

    #[test]
    fn success_finishes_and_counts_the_attempt() {
        let end = decide(
            &row(0, 0, 0),
            Attempted::Ran(InvokeAttempt::Success(Bytes::from_static(b"ok"))),
            &settings(3),
            10,
        );
        assert_eq!(end.attempts, 1);
        assert_eq!(end.outcome, Some(AttemptOutcome::Success));
        assert_eq!(
            end.transition,
            Transition::Succeeded {
                result: Bytes::from_static(b"ok")
            }
        );
        assert!(end.delivery.is_none());
    }

    #[test]
    fn function_errors_back_off_exponentially_then_give_up() {
        let s = settings(3);
        let err = || {
            Attempted::Ran(InvokeAttempt::FunctionError(Bytes::from_static(
                b"{\"errorMessage\":\"boom\"}",
            )))
        };
        let e1 = decide(&row(0, 0, 0), err(), &s, 1_000);
        assert_eq!(
            e1.transition,
            Transition::Retry {
                next_attempt_at_ms: 61_000
            }
        );
        assert_eq!(e1.last_error.as_deref(), Some("function error: boom"));
        let e2 = decide(&row(1, 0, 0), err(), &s, 100_000);
        assert_eq!(
            e2.transition,
            Transition::Retry {
                next_attempt_at_ms: 220_000
            }
        );
        let e3 = decide(&row(2, 0, 0), err(), &s, 300_000);
        assert_eq!(e3.attempts, 3);
        assert_eq!(
            e3.transition,
            Transition::Failed {
                condition: Condition::RetriesExhausted
            }
        );
    }

    #[test]
    fn throttles_do_not_consume_attempts_until_max_age() {
        let s = settings(1);
        let end = decide(
            &row(0, 4, 0),
            Attempted::Ran(InvokeAttempt::Throttled),
            &s,
            1_000,
        );
        assert_eq!(end.attempts, 0);
        assert_eq!(end.throttles, 5);
        assert_eq!(
            end.transition,
            Transition::Retry {
                next_attempt_at_ms: 17_000
            }
        );
        let late = decide(
            &row(0, 4, 0),
            Attempted::Ran(InvokeAttempt::Throttled),
            &s,
            3_590_000,
        );
        assert_eq!(
            late.transition,
            Transition::Failed {
                condition: Condition::EventAgeExceeded
            }
        );
    }

    #[test]
    fn a_retry_past_the_max_age_fails_now() {
        let s = settings(3);
        let end = decide(
            &row(0, 0, 0),
            Attempted::Ran(InvokeAttempt::Fault {
                error_type: "Sandbox.Timedout".into(),
                message: "timed out".into(),
            }),
            &s,
            3_550_000,
        );
        assert_eq!(end.attempts, 1);
        assert_eq!(
            end.transition,
            Transition::Failed {
                condition: Condition::EventAgeExceeded
            }
        );
    }

    #[test]
    fn interrupted_attempts_count_but_spare_the_retry_budget() {
        // FunctionGraph's default: one attempt. An interruption does not use it up.
        let s = settings(1);
        let end = decide(&row(0, 0, 0), Attempted::Interrupted, &s, 5);
        assert_eq!((end.attempts, end.interrupts), (1, 1));
        assert_eq!(
            end.transition,
            Transition::Retry {
                next_attempt_at_ms: 5
            }
        );
        let mut r = row(1, 0, 0);
        r.interrupts = 1;
        assert_eq!(
            precheck(&r, &s, 5),
            None,
            "the interrupted attempt left the budget"
        );
        let ok = decide(
            &r,
            Attempted::Ran(InvokeAttempt::FunctionError(Bytes::new())),
            &s,
            6,
        );
        assert_eq!(ok.attempts, 2);
        assert_eq!(
            ok.transition,
            Transition::Failed {
                condition: Condition::RetriesExhausted
            }
        );
        // The poison guard: the third interruption fails the invocation.
        let mut r = row(2, 0, 0);
        r.interrupts = 2;
        let end = decide(&r, Attempted::Interrupted, &s, 5);
        assert_eq!(
            end.transition,
            Transition::Failed {
                condition: Condition::RetriesExhausted
            }
        );
        r.interrupts = 3;
        r.attempts = 3;
        assert_eq!(precheck(&r, &s, 5), Some(Attempted::Exhausted));
        let released = decide(&row(1, 0, 0), Attempted::NotStarted, &s, 5);
        assert_eq!(released.attempts, 1);
        assert_eq!(released.outcome, None);
        assert_eq!(
            released.transition,
            Transition::Retry {
                next_attempt_at_ms: 5
            }
        );
    }

    #[test]
    fn failure_destination_gets_the_last_stored_error() {
        let mut s = settings(1);
        s.destinations.on_failure = Some("http://127.0.0.1:9/f".into());
        s.function_urn = Some("urn:fss:local:p:function:default:f:latest".into());
        let mut r = row(1, 0, 0);
        r.error = Some(Bytes::from_static(b"{\"errorMessage\":\"earlier\"}"));
        let end = decide(&r, Attempted::Exhausted, &s, 10);
        let d = end.delivery.expect("a notification");
        assert_eq!(d.kind, "on_failure");
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(
            v["request_context"]["function_urn"],
            "urn:fss:local:p:function:default:f:latest"
        );
        assert_eq!(
            v["request_context"]["condition"],
            "UnhandledInvocationError"
        );
        assert_eq!(v["response_context"]["status_code"], 500);
        assert_eq!(v["response_payload"], "{\"errorMessage\":\"earlier\"}");
        assert_eq!(v["request_payload"], "{\"k\":1}");
    }
}
