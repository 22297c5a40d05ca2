//! Shared fakes and helpers of the integration tests.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fnbox_async::{
    AsyncState, AsyncStatus, AsyncStore, AsyncWorker, Backoff, DeliverySettings, FunctionSettings,
    InvokeAttempt, Invoker, WorkerSettings,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One call the fake saw.
#[derive(Clone, Debug)]
pub struct Call {
    pub function: String,
    pub request_id: String,
    pub payload: Bytes,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    /// Scripted answers per request id, consumed in order; echo success once empty.
    scripts: Mutex<HashMap<String, VecDeque<InvokeAttempt>>>,
    /// Answer for every call of these functions (overrides echo).
    always: Mutex<HashMap<String, InvokeAttempt>>,
    calls: Mutex<Vec<Call>>,
    delay: Mutex<Duration>,
    running: Mutex<HashMap<String, u32>>,
    peak: Mutex<HashMap<String, u32>>,
}

/// A scripted invoker: echoes the payload unless told otherwise.
#[derive(Clone, Default)]
pub struct Fake {
    inner: Arc<Inner>,
}

impl Fake {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next answers for `request_id`.
    pub fn script(&self, request_id: &str, answers: impl IntoIterator<Item = InvokeAttempt>) {
        self.inner
            .scripts
            .lock()
            .unwrap()
            .insert(request_id.to_string(), answers.into_iter().collect());
    }

    /// Every call of `function` answers `answer`.
    pub fn always(&self, function: &str, answer: InvokeAttempt) {
        self.inner
            .always
            .lock()
            .unwrap()
            .insert(function.to_string(), answer);
    }

    /// Each call takes this long.
    pub fn delay(&self, d: Duration) {
        *self.inner.delay.lock().unwrap() = d;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    pub fn calls_for(&self, request_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.request_id == request_id)
            .collect()
    }

    /// Most calls of `function` in flight at once.
    pub fn peak(&self, function: &str) -> u32 {
        *self.inner.peak.lock().unwrap().get(function).unwrap_or(&0)
    }
}

impl Invoker for Fake {
    async fn invoke(&self, function: &str, request_id: &str, payload: Bytes) -> InvokeAttempt {
        self.inner.calls.lock().unwrap().push(Call {
            function: function.to_string(),
            request_id: request_id.to_string(),
            payload: payload.clone(),
            at: Instant::now(),
        });
        {
            let mut running = self.inner.running.lock().unwrap();
            let n = running.entry(function.to_string()).or_default();
            *n += 1;
            let mut peak = self.inner.peak.lock().unwrap();
            let p = peak.entry(function.to_string()).or_default();
            *p = (*p).max(*n);
        }
        let delay = *self.inner.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        *self
            .inner
            .running
            .lock()
            .unwrap()
            .get_mut(function)
            .unwrap() -= 1;
        if let Some(a) = self.inner.always.lock().unwrap().get(function) {
            return a.clone();
        }
        let scripted = self
            .inner
            .scripts
            .lock()
            .unwrap()
            .get_mut(request_id)
            .and_then(|q| q.pop_front());
        scripted.unwrap_or(InvokeAttempt::Success(payload))
    }
}

/// Settings with short backoffs, for tests.
pub fn fast(max_attempts: u32) -> FunctionSettings {
    FunctionSettings {
        max_attempts,
        retry_backoff: Backoff::doubling(Duration::from_millis(50), Duration::from_millis(400)),
        throttle_backoff: Backoff::doubling(Duration::from_millis(20), Duration::from_millis(100)),
        ..FunctionSettings::functiongraph()
    }
}

pub fn worker_settings(default: FunctionSettings) -> WorkerSettings {
    WorkerSettings {
        default,
        poll_interval: Duration::from_millis(200),
        delivery: DeliverySettings {
            max_attempts: 5,
            backoff: Backoff::doubling(Duration::from_millis(50), Duration::from_millis(200)),
            timeout: Duration::from_secs(2),
            concurrency: 4,
        },
        ..WorkerSettings::default()
    }
}

/// A worker on its own tracker and token.
pub struct Running {
    pub worker: AsyncWorker,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
}

impl Running {
    pub fn start(store: &AsyncStore, fake: &Fake, settings: WorkerSettings) -> Running {
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let worker = AsyncWorker::spawn(
            store.clone(),
            fake.clone(),
            settings,
            tracker.clone(),
            cancel.clone(),
        )
        .expect("valid settings");
        Running {
            worker,
            tracker,
            cancel,
        }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .expect("worker stops within 10 s");
    }
}

/// Polls `request_id` until `done` holds (10 s at most).
pub async fn wait_for(
    store: &AsyncStore,
    request_id: &str,
    done: impl Fn(&AsyncStatus) -> bool,
) -> AsyncStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = store.status(request_id).await.unwrap();
        if let Some(s) = &s {
            if done(s) {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {request_id}; last status {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until the invocation is done.
pub async fn wait_final(store: &AsyncStore, request_id: &str) -> AsyncStatus {
    wait_for(store, request_id, |s| s.state.is_final()).await
}

pub fn is(state: AsyncState) -> impl Fn(&AsyncStatus) -> bool {
    move |s| s.state == state
}

/// The backend a shared test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Queue {
    /// The embedded SQLite file in a temp dir.
    Sqlite,
    /// A fresh database on the test binary's PostgreSQL server (`fnbox_testkit::pg`).
    Postgres,
}

/// What keeps an opened queue's storage alive (the SQLite temp dir).
pub struct Keep(#[allow(dead_code)] Option<tempfile::TempDir>);

impl Queue {
    /// An empty queue of this backend.
    pub async fn open(self) -> (AsyncStore, Keep) {
        match self {
            Queue::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (AsyncStore::open(dir.path()).unwrap(), Keep(Some(dir)))
            }
            Queue::Postgres => {
                let url = tokio::task::spawn_blocking(|| {
                    fnbox_testkit::pg::shared().create_database("queue")
                })
                .await
                .expect("a test database");
                (
                    AsyncStore::connect(&url, fnbox_async::PgOptions::default())
                        .await
                        .expect("connect to the test database"),
                    Keep(None),
                )
            }
        }
    }
}

/// Runs each named `async fn name(q: Queue)` once per backend: `sqlite::name` and
/// `postgres::name`.
#[allow(unused_macros)]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::Queue::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::Queue::Postgres).await
                }
            )*
        }
    };
}
