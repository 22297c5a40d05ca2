//! Extensions of an instance: which were launched, which registered, and the rules of
//! registration that do not depend on the dialect (launched name, one registration per name,
//! unique port, at most ten, only during init). Dialects check their own header formats.
//!
//! Two ways to learn about invocations:
//! - [`ExtensionTarget::Push`] (FunctionGraph): the instance POSTs each invocation to the
//!   extension's own listener.
//! - [`ExtensionTarget::Pull`] (Lambda): the extension long-polls; the instance queues
//!   [`PullEvent`]s per extension ([`ExtensionRegistry::release_invoke`],
//!   [`ExtensionRegistry::release_shutdown`]) and the dialect hands them out on
//!   [`ExtensionRegistry::next_event`]. An event counts as handled when the extension asks for
//!   the next one, which is how an invocation knows every extension is done with it.
//!
//! A pull registration whose name is not a launched file is an *internal* extension (started
//! by the runtime itself, e.g. `lambda_runtime`'s graceful-shutdown helper): allowed during
//! init, never subscribed to SHUTDOWN, not awaited before the runtime starts.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

/// Most extensions one instance may have.
pub const MAX_EXTENSIONS: usize = 10;

/// Which events a pull extension asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PullEvents {
    /// One event per invocation.
    pub invoke: bool,
    /// One event when the instance goes away.
    pub shutdown: bool,
}

/// How an extension learns about invocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtensionTarget {
    /// fnbox POSTs each invocation to this address (FunctionGraph).
    Push(SocketAddr),
    /// The extension long-polls for these events (Lambda).
    Pull(PullEvents),
}

/// A registered extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// Launched file name (or the name an internal extension chose).
    pub name: String,
    /// Where invocations go.
    pub target: ExtensionTarget,
    /// Identifier handed out at registration (a UUID).
    pub id: String,
    /// Not a launched file: registered by the runtime process itself.
    pub internal: bool,
}

/// An event waiting for a pull extension; the dialect renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// An invocation started.
    Invoke {
        /// Request id.
        request_id: String,
        /// Epoch milliseconds at which fnbox gives up on the invocation.
        deadline_epoch_ms: u64,
    },
    /// The instance shuts down.
    Shutdown {
        /// Why.
        reason: ShutdownReason,
        /// Epoch milliseconds at which whatever is left gets SIGKILL.
        deadline_epoch_ms: u64,
    },
}

/// Why an instance shuts down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Idle reclaim or fnbox stopping.
    Spindown,
    /// An invocation or the init ran out of time.
    Timeout,
    /// A crash, an out-of-memory kill, or a failed init.
    Failure,
}

impl ShutdownReason {
    /// Wire spelling (`spindown`, `timeout`, `failure`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// An extension reported that it failed (`init/error`, `exit/error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionFailure {
    /// Which extension.
    pub name: String,
    /// `Extension.InitError` or `Extension.ExitError`.
    pub error_type: &'static str,
    /// What the extension said (its error-type header).
    pub message: String,
}

/// A broken registration rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name is not one fnbox launched.
    #[error("extension name '{name}' is not a launched extension; launched: {launched}")]
    NotLaunched {
        /// Name sent.
        name: String,
        /// Names fnbox launched.
        launched: String,
    },
    /// The name registered already.
    #[error("extension '{0}' is already registered")]
    Duplicate(String),
    /// Another extension uses the address.
    #[error(
        "address {addr} is already used by extension '{by}'; each extension needs its own port"
    )]
    AddressInUse {
        /// Address sent.
        addr: SocketAddr,
        /// Who has it.
        by: String,
    },
    /// Ten are registered already.
    #[error("at most {MAX_EXTENSIONS} extensions may register")]
    TooMany,
    /// Init is over.
    #[error("registration is only possible during init; this instance finished its init")]
    AfterInit,
}

/// Why a pull call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// No extension has this identifier.
    #[error("Unknown extension {0}")]
    UnknownId(String),
    /// The extension reported an init or exit error; it may make no further call.
    #[error("extension '{0}' reported an error and may make no further calls")]
    Failed(String),
}

/// One pull extension's queue.
struct PullSlot {
    name: String,
    queue: VecDeque<(u64, PullEvent)>,
    /// Sequence number of the event handed out and not yet followed by another `next`.
    in_hand: Option<u64>,
    /// Highest sequence number handled (followed by another `next`).
    handled: watch::Sender<u64>,
    polled: bool,
    failed: bool,
    notify: Arc<Notify>,
}

struct State {
    registered: Vec<Registered>,
    slots: HashMap<String, PullSlot>,
    next_seq: u64,
}

/// Registration state of one instance.
pub struct ExtensionRegistry {
    launched: Vec<String>,
    state: Mutex<State>,
    /// Registered launched extensions.
    count: watch::Sender<usize>,
    /// Pull extensions that called `next` at least once.
    polled: watch::Sender<usize>,
    failure: watch::Sender<Option<ExtensionFailure>>,
    open: std::sync::atomic::AtomicBool,
}

impl ExtensionRegistry {
    /// A registry expecting the given launched names.
    pub fn new(launched: Vec<String>) -> Self {
        Self {
            launched,
            state: Mutex::new(State {
                registered: Vec::new(),
                slots: HashMap::new(),
                next_seq: 1,
            }),
            count: watch::channel(0).0,
            polled: watch::channel(0).0,
            failure: watch::channel(None).0,
            open: std::sync::atomic::AtomicBool::new(true),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("registry lock")
    }

    /// Names fnbox launched.
    pub fn launched(&self) -> &[String] {
        &self.launched
    }

    /// Applies the registration rules and records a push extension (FunctionGraph).
    pub fn register(&self, name: &str, target: ExtensionTarget) -> Result<(), RegisterError> {
        if !self.open.load(std::sync::atomic::Ordering::Acquire) {
            return Err(RegisterError::AfterInit);
        }
        if !self.launched.iter().any(|l| l == name) {
            return Err(RegisterError::NotLaunched {
                name: name.to_string(),
                launched: if self.launched.is_empty() {
                    "none".into()
                } else {
                    self.launched.join(", ")
                },
            });
        }
        self.add(name, target, false).map(|_| ())
    }

    /// Registers a pull extension (Lambda); a name fnbox did not launch becomes an internal
    /// extension. Returns the registration with its identifier. An internal extension asking
    /// for SHUTDOWN is refused with [`RegisterError::NotLaunched`]: only launched ones may.
    pub fn register_pull(
        &self,
        name: &str,
        events: PullEvents,
    ) -> Result<Registered, RegisterError> {
        let internal = !self.launched.iter().any(|l| l == name);
        if internal && events.shutdown {
            return Err(RegisterError::NotLaunched {
                name: name.to_string(),
                launched: if self.launched.is_empty() {
                    "none".into()
                } else {
                    self.launched.join(", ")
                },
            });
        }
        self.add(name, ExtensionTarget::Pull(events), internal)
    }

    fn add(
        &self,
        name: &str,
        target: ExtensionTarget,
        internal: bool,
    ) -> Result<Registered, RegisterError> {
        if !self.open.load(std::sync::atomic::Ordering::Acquire) {
            return Err(RegisterError::AfterInit);
        }
        let mut st = self.lock();
        if st.registered.iter().any(|r| r.name == name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        if let ExtensionTarget::Push(addr) = &target {
            if let Some(other) = st
                .registered
                .iter()
                .find(|r| matches!(&r.target, ExtensionTarget::Push(a) if a.port() == addr.port()))
            {
                return Err(RegisterError::AddressInUse {
                    addr: *addr,
                    by: other.name.clone(),
                });
            }
        }
        if st.registered.len() >= MAX_EXTENSIONS {
            return Err(RegisterError::TooMany);
        }
        let reg = Registered {
            name: name.to_string(),
            target,
            id: uuid::Uuid::new_v4().to_string(),
            internal,
        };
        if matches!(reg.target, ExtensionTarget::Pull(_)) {
            st.slots.insert(
                reg.id.clone(),
                PullSlot {
                    name: reg.name.clone(),
                    queue: VecDeque::new(),
                    in_hand: None,
                    handled: watch::channel(0).0,
                    polled: false,
                    failed: false,
                    notify: Arc::new(Notify::new()),
                },
            );
        }
        st.registered.push(reg.clone());
        let external = st.registered.iter().filter(|r| !r.internal).count();
        drop(st);
        self.count.send_replace(external);
        Ok(reg)
    }

    /// Ends the registration window (init is over).
    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Registered extensions, in registration order.
    pub fn registered(&self) -> Vec<Registered> {
        self.lock().registered.clone()
    }

    /// The registration with this identifier.
    pub fn by_id(&self, id: &str) -> Option<Registered> {
        self.lock().registered.iter().find(|r| r.id == id).cloned()
    }

    /// Whether any extension registered.
    pub fn any_registered(&self) -> bool {
        !self.lock().registered.is_empty()
    }

    /// Waits until every launched extension registered.
    pub async fn all_registered(&self) {
        let want = self.launched.len();
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n >= want).await;
    }

    /// Launched extensions that have not registered.
    pub fn missing(&self) -> Vec<String> {
        let st = self.lock();
        self.launched
            .iter()
            .filter(|l| !st.registered.iter().any(|r| &r.name == *l))
            .cloned()
            .collect()
    }

    /// Waits until every registered pull extension called `next` at least once (Lambda: init
    /// ends there). Immediate when there is none.
    pub async fn all_polled(&self) {
        let mut rx = self.polled.subscribe();
        loop {
            let want = self.lock().slots.len();
            if *rx.borrow_and_update() >= want {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Pull extensions that registered but never called `next`.
    pub fn not_polled(&self) -> Vec<String> {
        let st = self.lock();
        let mut names: Vec<String> = st
            .slots
            .values()
            .filter(|s| !s.polled)
            .map(|s| s.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Extension side (`event/next`): marks the previous event handled, then waits for the
    /// next one. Cancellation-safe: a poll dropped while waiting loses nothing.
    pub async fn next_event(&self, id: &str) -> Result<PullEvent, PullError> {
        let notify = {
            let mut st = self.lock();
            let slot = st
                .slots
                .get_mut(id)
                .ok_or_else(|| PullError::UnknownId(id.to_string()))?;
            if slot.failed {
                return Err(PullError::Failed(slot.name.clone()));
            }
            if let Some(seq) = slot.in_hand.take() {
                slot.handled.send_replace(seq);
            }
            let first = !slot.polled;
            slot.polled = true;
            let notify = slot.notify.clone();
            drop(st);
            if first {
                self.polled.send_modify(|n| *n += 1);
            }
            notify
        };
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                let slot = st
                    .slots
                    .get_mut(id)
                    .ok_or_else(|| PullError::UnknownId(id.to_string()))?;
                if let Some((seq, event)) = slot.queue.pop_front() {
                    slot.in_hand = Some(seq);
                    return Ok(event);
                }
            }
            notified.await;
        }
    }

    /// Queues an INVOKE for every pull extension that asked for it; the returned future
    /// completes when each of them asked for its next event afterwards (or failed).
    pub fn release_invoke(
        &self,
        request_id: &str,
        deadline_epoch_ms: u64,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let waits = self.release(
            |events| events.invoke,
            PullEvent::Invoke {
                request_id: request_id.to_string(),
                deadline_epoch_ms,
            },
        );
        if waits.is_empty() {
            return None;
        }
        Some(async move {
            for (mut rx, seq, _) in waits {
                let _ = rx.wait_for(|h| *h >= seq).await;
            }
        })
    }

    /// Queues a SHUTDOWN for every external pull extension that asked for it. Returns, per
    /// extension name, a future that completes when it asked for its next event afterwards
    /// (it may also simply exit, which the caller watches for).
    pub fn release_shutdown(
        &self,
        reason: ShutdownReason,
        deadline_epoch_ms: u64,
    ) -> Vec<(String, futures::future::BoxFuture<'static, ()>)> {
        let waits = self.release(
            |events| events.shutdown,
            PullEvent::Shutdown {
                reason,
                deadline_epoch_ms,
            },
        );
        waits
            .into_iter()
            .map(|(mut rx, seq, name)| {
                let fut: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                    let _ = rx.wait_for(|h| *h >= seq).await;
                });
                (name, fut)
            })
            .collect()
    }

    fn release(
        &self,
        wants: impl Fn(&PullEvents) -> bool,
        event: PullEvent,
    ) -> Vec<(watch::Receiver<u64>, u64, String)> {
        let mut st = self.lock();
        let ids: Vec<String> = st
            .registered
            .iter()
            .filter(|r| matches!(&r.target, ExtensionTarget::Pull(e) if wants(e)))
            .map(|r| r.id.clone())
            .collect();
        let mut waits = Vec::with_capacity(ids.len());
        for id in ids {
            let seq = st.next_seq;
            st.next_seq += 1;
            let Some(slot) = st.slots.get_mut(&id) else {
                continue;
            };
            if slot.failed {
                continue;
            }
            slot.queue.push_back((seq, event.clone()));
            slot.notify.notify_one();
            waits.push((slot.handled.subscribe(), seq, slot.name.clone()));
        }
        waits
    }

    /// An extension reported `init/error` (`init == true`) or `exit/error`: it may make no
    /// further call, and the instance fails with `Extension.InitError` / `Extension.ExitError`.
    pub fn report_failure(&self, id: &str, init: bool, message: &str) -> Result<(), PullError> {
        let name = {
            let mut st = self.lock();
            let slot = st
                .slots
                .get_mut(id)
                .ok_or_else(|| PullError::UnknownId(id.to_string()))?;
            if slot.failed {
                return Err(PullError::Failed(slot.name.clone()));
            }
            slot.failed = true;
            // Whatever waits on this extension stops waiting.
            slot.handled.send_replace(u64::MAX);
            slot.name.clone()
        };
        self.failure.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            *f = Some(ExtensionFailure {
                name,
                error_type: if init {
                    "Extension.InitError"
                } else {
                    "Extension.ExitError"
                },
                message: message.to_string(),
            });
            true
        });
        Ok(())
    }

    /// Resolves with the first failure an extension reported; never if none does.
    pub async fn failed(&self) -> ExtensionFailure {
        let mut rx = self.failure.subscribe();
        loop {
            if let Some(f) = rx.borrow_and_update().clone() {
                return f;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(port: u16) -> ExtensionTarget {
        ExtensionTarget::Push(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    const BOTH: PullEvents = PullEvents {
        invoke: true,
        shutdown: true,
    };

    #[test]
    fn rules() {
        let r = ExtensionRegistry::new(vec!["extensionA.sh".into(), "extensionB.sh".into()]);
        assert!(matches!(
            r.register("other.sh", addr(8081)),
            Err(RegisterError::NotLaunched { .. })
        ));
        r.register("extensionA.sh", addr(8081)).unwrap();
        assert_eq!(
            r.register("extensionA.sh", addr(8083)),
            Err(RegisterError::Duplicate("extensionA.sh".into()))
        );
        assert!(matches!(
            r.register("extensionB.sh", addr(8081)),
            Err(RegisterError::AddressInUse { .. })
        ));
        assert_eq!(r.missing(), vec!["extensionB.sh".to_string()]);
        r.close();
        assert_eq!(
            r.register("extensionB.sh", addr(8082)),
            Err(RegisterError::AfterInit)
        );
    }

    #[test]
    fn at_most_ten() {
        let names: Vec<String> = (0..11).map(|i| format!("extension{i}.sh")).collect();
        let r = ExtensionRegistry::new(names.clone());
        for (i, n) in names.iter().take(10).enumerate() {
            r.register(n, addr(8081 + i as u16)).unwrap();
        }
        assert_eq!(
            r.register(&names[10], addr(9000)),
            Err(RegisterError::TooMany)
        );
    }

    #[tokio::test]
    async fn waits_for_all() {
        let r = std::sync::Arc::new(ExtensionRegistry::new(vec!["extensionA.sh".into()]));
        let r2 = r.clone();
        let t = tokio::spawn(async move { r2.all_registered().await });
        r.register("extensionA.sh", addr(8081)).unwrap();
        t.await.unwrap();
        assert!(r.any_registered());
    }

    #[test]
    fn internal_pull_extensions() {
        let r = ExtensionRegistry::new(vec!["ext".into()]);
        let internal = r
            .register_pull("helper", PullEvents::default())
            .expect("an unknown name is an internal extension");
        assert!(internal.internal);
        assert!(matches!(
            r.register_pull("other", BOTH),
            Err(RegisterError::NotLaunched { .. })
        ));
        let ext = r.register_pull("ext", BOTH).unwrap();
        assert!(!ext.internal);
        assert_ne!(ext.id, internal.id);
        assert_eq!(r.by_id(&ext.id).unwrap().name, "ext");
        assert!(r.missing().is_empty());
    }

    #[tokio::test]
    async fn invoke_completes_when_every_extension_asks_again() {
        let r = Arc::new(ExtensionRegistry::new(vec!["a".into(), "b".into()]));
        let a = r.register_pull("a", BOTH).unwrap().id;
        let b = r
            .register_pull(
                "b",
                PullEvents {
                    invoke: false,
                    shutdown: true,
                },
            )
            .unwrap()
            .id;
        assert!(r.release_invoke("none", 1).is_some());
        // First polls: init is over once both asked once.
        let ra = r.clone();
        let a2 = a.clone();
        let first = tokio::spawn(async move { ra.next_event(&a2).await });
        let rb = r.clone();
        let b2 = b.clone();
        let parked_b = tokio::spawn(async move { rb.next_event(&b2).await });
        tokio::time::timeout(Duration::from_secs(1), r.all_polled())
            .await
            .unwrap();
        // The INVOKE queued before the first poll is handed out now.
        assert!(
            matches!(first.await.unwrap().unwrap(), PullEvent::Invoke { request_id, .. } if request_id == "none")
        );
        let done = tokio::spawn(r.release_invoke("req", 42).unwrap());
        tokio::task::yield_now().await;
        assert!(!done.is_finished());
        // `a` was still handling "none": asking again hands it "req".
        let got = r.next_event(&a).await.unwrap();
        assert_eq!(
            got,
            PullEvent::Invoke {
                request_id: "req".into(),
                deadline_epoch_ms: 42
            }
        );
        assert!(!done.is_finished());
        let ra = r.clone();
        let a3 = a.clone();
        let parked_a = tokio::spawn(async move { ra.next_event(&a3).await });
        tokio::time::timeout(Duration::from_secs(1), done)
            .await
            .expect("invoke handled once `a` asked again")
            .unwrap();
        // SHUTDOWN goes to both.
        let waits = r.release_shutdown(ShutdownReason::Timeout, 9);
        assert_eq!(waits.len(), 2);
        let shut = tokio::spawn(futures::future::join_all(waits.into_iter().map(|(_, f)| f)));
        let want = PullEvent::Shutdown {
            reason: ShutdownReason::Timeout,
            deadline_epoch_ms: 9,
        };
        assert_eq!(parked_a.await.unwrap().unwrap(), want);
        assert_eq!(parked_b.await.unwrap().unwrap(), want);
        assert!(!shut.is_finished());
        r.report_failure(&a, false, "bye").unwrap();
        let rb = r.clone();
        let _again = tokio::spawn(async move { rb.next_event(&b).await });
        tokio::time::timeout(Duration::from_secs(1), shut)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.failed().await.error_type, "Extension.ExitError");
        assert_eq!(r.next_event(&a).await, Err(PullError::Failed("a".into())));
        assert_eq!(
            r.next_event("nope").await,
            Err(PullError::UnknownId("nope".into()))
        );
    }
}
