//! The pool's rules under paused tokio time, with fake instances: every wait, deadline and
//! reclaim is checked to the exact virtual instant, so these tests are fast and never flaky on
//! a loaded machine. The same rules run end to end with real processes in
//! `crates/fnbox-fg/tests/pool.rs`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fnbox_engine::lifecycle::{State, Transition};
use fnbox_engine::telemetry::{ReportMetrics, Status};
use fnbox_engine::{
    Answer, AnswerTx, Factory, InitError, InvokeOutcome, InvokeRequest, InvokeResult, Pool,
    PoolConfig, PoolError, Pooled,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A fake instance: the runtime answers after `work` of virtual time, the extensions are done
/// `tail` later.
struct Fake {
    id: u32,
    state: Mutex<State>,
    concurrency: u32,
    work: Duration,
    tail: Duration,
    invocations: AtomicU64,
    started: Instant,
    shut_down_at: Mutex<Option<Instant>>,
}

impl Fake {
    fn apply(&self, t: Transition) -> bool {
        let mut s = self.state.lock().unwrap();
        match s.apply(t) {
            Ok(next) => {
                *s = next;
                true
            }
            Err(_) => false,
        }
    }

    /// The instance dies on its own (a crash between invocations).
    fn kill(&self) {
        self.apply(Transition::Fail);
    }
}

impl Pooled for Fake {
    fn state(&self) -> State {
        *self.state.lock().unwrap()
    }

    fn try_begin(&self) -> bool {
        self.apply(Transition::Begin {
            limit: self.concurrency,
        })
    }

    fn can_accept(&self) -> bool {
        self.state().can_begin(self.concurrency)
    }

    async fn run_begun(&self, req: InvokeRequest, mut answer: AnswerTx) -> InvokeOutcome {
        {
            let started = Instant::now();
            tokio::time::sleep(self.work).await;
            self.invocations.fetch_add(1, Ordering::Relaxed);
            let metrics = ReportMetrics::new(started.elapsed(), 0, 128);
            let result = InvokeResult::Ok(Bytes::from(format!("instance {}", self.id)));
            answer.send(Answer {
                request_id: req.request_id.clone(),
                result: result.clone(),
                error_type: None,
                metrics,
                log: Vec::new(),
                init_duration_ms: None,
            });
            tokio::time::sleep(self.tail).await;
            self.apply(Transition::Finish);
            InvokeOutcome {
                request_id: req.request_id,
                result,
                error_type: None,
                metrics,
                log: Vec::new(),
            }
        }
    }

    async fn shutdown(&self) {
        {
            if !self.apply(Transition::Shutdown) {
                self.apply(Transition::Fail);
            } else {
                self.apply(Transition::Stopped);
            }
            *self.shut_down_at.lock().unwrap() = Some(Instant::now());
        }
    }

    fn pod_name(&self) -> &str {
        "fake"
    }

    fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    fn peak_bytes(&self) -> u64 {
        0
    }

    fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Starts [`Fake`]s after `init` of virtual time; remembers every one it started.
struct Factory1 {
    init: Duration,
    work: Duration,
    tail: Mutex<Duration>,
    concurrency: u32,
    fail_inits: AtomicBool,
    starts: AtomicU32,
    started: Mutex<Vec<Arc<Fake>>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Factory1 {
    fn new(init: Duration, work: Duration, concurrency: u32) -> Arc<Self> {
        Arc::new(Self {
            init,
            work,
            tail: Mutex::new(Duration::ZERO),
            concurrency,
            fail_inits: AtomicBool::new(false),
            starts: AtomicU32::new(0),
            started: Mutex::new(Vec::new()),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        })
    }

    fn instances(&self) -> Vec<Arc<Fake>> {
        self.started.lock().unwrap().clone()
    }
}

impl Factory for Factory1 {
    type Instance = Fake;

    async fn start_instance(&self, _trace_id: Option<String>) -> Result<Arc<Fake>, InitError> {
        {
            let id = self.starts.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.init).await;
            if self.fail_inits.load(Ordering::SeqCst) {
                return Err(InitError {
                    status: Status::Failure,
                    error_type: "Runtime.ExitError".into(),
                    message: "fake init failure".into(),
                    attempts: 1,
                    body: None,
                    restore: false,
                });
            }
            let fake = Arc::new(Fake {
                id,
                state: Mutex::new(State::Idle),
                concurrency: self.concurrency,
                work: self.work,
                tail: *self.tail.lock().unwrap(),
                invocations: AtomicU64::new(0),
                started: Instant::now(),
                shut_down_at: Mutex::new(None),
            });
            self.started.lock().unwrap().push(fake.clone());
            Ok(fake)
        }
    }

    fn name(&self) -> &str {
        "fake-fn"
    }

    fn concurrency(&self) -> u32 {
        self.concurrency
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(3)
    }

    fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }
}

fn config(max: u32, reserved: u32) -> PoolConfig {
    PoolConfig {
        max_instances: max,
        reserved_instances: reserved,
        idle_timeout: Duration::from_secs(60),
        acquire_timeout: Duration::from_secs(1),
        reserved_check: Duration::from_secs(5),
    }
}

fn req() -> InvokeRequest {
    InvokeRequest::sync(Bytes::from_static(b"{}"))
}

/// Lets every task that can run, run (paused time does not advance while any can).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn saturation_is_refused_after_exactly_the_bounded_wait() {
    let factory = Factory1::new(Duration::from_millis(100), Duration::from_secs(10), 1);
    let pool = Pool::new(factory.clone(), config(1, 0));
    pool.start().await.unwrap();
    let t0 = Instant::now();
    let busy = tokio::spawn({
        let pool = pool.clone();
        async move { pool.submit(req()).await }
    });
    // The first invocation holds the only slot for 10 s (after a 100 ms cold start).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t1 = Instant::now();
    let refused = pool.submit(req()).await.unwrap_err();
    assert!(
        matches!(refused, PoolError::Saturated { max: 1, .. }),
        "{refused:?}"
    );
    assert_eq!(
        Instant::now() - t1,
        Duration::from_secs(1),
        "acquire_timeout"
    );
    assert!(refused.to_string().contains("fake-fn"), "{refused}");
    let answered = busy.await.unwrap().unwrap();
    assert_eq!(answered.answer().metrics.duration_ms, 10_000.0);
    assert_eq!(Instant::now() - t0, Duration::from_millis(10_100));
    assert_eq!(factory.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gets_the_slot_freed_within_its_wait() {
    let factory = Factory1::new(Duration::ZERO, Duration::from_millis(600), 1);
    let pool = Pool::new(factory.clone(), config(1, 0));
    pool.start().await.unwrap();
    let a = tokio::spawn({
        let pool = pool.clone();
        async move { pool.submit(req()).await }
    });
    settle().await;
    let t = Instant::now();
    let b = pool
        .submit(req())
        .await
        .expect("the slot frees up after 600 ms");
    assert_eq!(
        Instant::now() - t,
        Duration::from_millis(1200),
        "waited, then ran"
    );
    a.await.unwrap().unwrap();
    assert_eq!(
        b.answer().result,
        InvokeResult::Ok(Bytes::from("instance 0"))
    );
    assert_eq!(
        factory.starts.load(Ordering::SeqCst),
        1,
        "the warm instance was reused"
    );
}

#[tokio::test(start_paused = true)]
async fn no_cold_start_beyond_max_instances() {
    let factory = Factory1::new(Duration::from_millis(50), Duration::from_millis(300), 1);
    let pool = Pool::new(factory.clone(), config(3, 0));
    pool.start().await.unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.invoke(req()).await })
        })
        .collect();
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            Err(PoolError::Saturated { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(factory.starts.load(Ordering::SeqCst), 3);
    // 3 run at once for 300 ms; the others wait at most 1 s: two more rounds fit.
    assert_eq!(ok, 8);
    assert!(pool.instances().len() <= 3);
}

#[tokio::test(start_paused = true)]
async fn concurrent_num_shares_one_instance() {
    let factory = Factory1::new(Duration::from_millis(50), Duration::from_millis(500), 3);
    let pool = Pool::new(factory.clone(), config(1, 0));
    pool.start().await.unwrap();
    let t = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.invoke(req()).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(
        Instant::now() - t,
        Duration::from_millis(550),
        "all three at once"
    );
    assert_eq!(factory.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_instances_are_reclaimed_at_exactly_idle_timeout() {
    let factory = Factory1::new(Duration::ZERO, Duration::from_millis(10), 1);
    let pool = Pool::new(factory.clone(), config(2, 0));
    pool.start().await.unwrap();
    pool.invoke(req()).await.unwrap();
    let released = Instant::now();
    let fake = factory.instances()[0].clone();
    tokio::time::sleep(Duration::from_millis(59_999)).await;
    settle().await;
    assert!(
        fake.shut_down_at.lock().unwrap().is_none(),
        "not yet idle for 60 s"
    );
    assert_eq!(pool.instances().len(), 1);
    tokio::time::sleep(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(
        *fake.shut_down_at.lock().unwrap(),
        Some(released + Duration::from_secs(60))
    );
    assert!(pool.instances().is_empty());
    // The next invocation cold-starts a new instance.
    pool.invoke(req()).await.unwrap();
    assert_eq!(factory.starts.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn use_postpones_reclaim() {
    let factory = Factory1::new(Duration::ZERO, Duration::from_millis(10), 1);
    let pool = Pool::new(factory.clone(), config(1, 0));
    pool.start().await.unwrap();
    for _ in 0..5 {
        pool.invoke(req()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(50)).await;
    }
    assert_eq!(
        factory.starts.load(Ordering::SeqCst),
        1,
        "never idle for 60 s"
    );
    let fake = factory.instances()[0].clone();
    assert!(fake.shut_down_at.lock().unwrap().is_none());
    assert_eq!(fake.invocations(), 5);
}

#[tokio::test(start_paused = true)]
async fn reserved_instances_are_kept_and_replaced() {
    let factory = Factory1::new(Duration::from_millis(100), Duration::from_millis(10), 1);
    let pool = Pool::new(factory.clone(), config(3, 2));
    pool.start().await.unwrap();
    assert_eq!(
        factory.starts.load(Ordering::SeqCst),
        2,
        "started with the pool"
    );
    // Never reclaimed, however long idle.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(pool.instances().len(), 2);
    assert!(pool.instances().iter().all(|i| i.reserved));
    // One dies while idle: replaced at the next reserved check (at most 5 s) by a new one
    // (100 ms init).
    factory.instances()[0].kill();
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    settle().await;
    assert_eq!(factory.starts.load(Ordering::SeqCst), 3);
    let infos = pool.instances();
    assert_eq!(infos.len(), 2);
    assert!(infos.iter().all(|i| i.reserved && i.state == "idle"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_cold_start_reaches_the_caller_and_frees_its_room() {
    let factory = Factory1::new(Duration::from_millis(100), Duration::from_millis(10), 1);
    factory.fail_inits.store(true, Ordering::SeqCst);
    let pool = Pool::new(factory.clone(), config(1, 0));
    pool.start().await.unwrap();
    let err = pool.submit(req()).await.unwrap_err();
    assert!(matches!(err, PoolError::Init(_)), "{err:?}");
    factory.fail_inits.store(false, Ordering::SeqCst);
    pool.invoke(req()).await.expect("room for a new start");
}

#[tokio::test(start_paused = true)]
async fn the_answer_comes_before_the_extensions_are_done() {
    let factory = Factory1::new(Duration::ZERO, Duration::from_millis(5), 1);
    *factory.tail.lock().unwrap() = Duration::from_millis(200);
    let pool = Pool::new(factory.clone(), config(1, 0));
    pool.start().await.unwrap();
    let t = Instant::now();
    let invocation = pool.submit(req()).await.unwrap();
    assert_eq!(
        Instant::now() - t,
        Duration::from_millis(5),
        "answered at the response"
    );
    assert_eq!(invocation.answer().metrics.duration_ms, 5.0);
    let outcome = invocation.finished().await.unwrap();
    assert_eq!(
        Instant::now() - t,
        Duration::from_millis(205),
        "ended after the tail"
    );
    assert_eq!(outcome.result, InvokeResult::Ok(Bytes::from("instance 0")));
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_invocations_in_flight_then_refuses() {
    let factory = Factory1::new(Duration::ZERO, Duration::from_secs(1), 1);
    *factory.tail.lock().unwrap() = Duration::from_secs(1);
    let pool = Pool::new(factory.clone(), config(1, 0));
    pool.start().await.unwrap();
    let running = pool.submit(req()).await.unwrap();
    let (_, rest) = running.into_parts();
    let t = Instant::now();
    let shutdown = tokio::spawn({
        let pool = pool.clone();
        async move { pool.shutdown().await }
    });
    let outcome = rest.await.expect("the invocation finishes");
    assert_eq!(outcome.result, InvokeResult::Ok(Bytes::from("instance 0")));
    shutdown.await.unwrap();
    // Shutdown waited for the extensions' tail of the invocation in flight, then stopped the
    // instance.
    assert_eq!(Instant::now() - t, Duration::from_secs(1));
    assert_eq!(
        *factory.instances()[0].shut_down_at.lock().unwrap(),
        Some(t + Duration::from_secs(1))
    );
    assert!(matches!(
        pool.submit(req()).await.unwrap_err(),
        PoolError::Closed(_)
    ));
}
