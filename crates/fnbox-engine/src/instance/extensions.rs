//! Extensions of an instance: which were launched, which registered, and the rules of
//! registration that do not depend on the dialect (launched name, one registration per name,
//! unique port, at most ten, only during init). Dialects check their own address format.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::sync::watch;

/// Most extensions one instance may have.
pub const MAX_EXTENSIONS: usize = 10;

/// How an extension learns about invocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtensionTarget {
    /// fnbox POSTs each invocation to this address (FunctionGraph).
    Push(SocketAddr),
}

/// A registered extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// Launched file name.
    pub name: String,
    /// Where invocations go.
    pub target: ExtensionTarget,
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

/// Registration state of one instance.
pub struct ExtensionRegistry {
    launched: Vec<String>,
    registered: Mutex<Vec<Registered>>,
    count: watch::Sender<usize>,
    open: std::sync::atomic::AtomicBool,
}

impl ExtensionRegistry {
    /// A registry expecting the given launched names.
    pub fn new(launched: Vec<String>) -> Self {
        Self {
            launched,
            registered: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            open: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Names fnbox launched.
    pub fn launched(&self) -> &[String] {
        &self.launched
    }

    /// Applies the registration rules and records the extension.
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
        let mut reg = self.registered.lock().expect("registry lock");
        if reg.iter().any(|r| r.name == name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        let ExtensionTarget::Push(addr) = &target;
        if let Some(other) = reg
            .iter()
            .find(|r| matches!(&r.target, ExtensionTarget::Push(a) if a.port() == addr.port()))
        {
            return Err(RegisterError::AddressInUse {
                addr: *addr,
                by: other.name.clone(),
            });
        }
        if reg.len() >= MAX_EXTENSIONS {
            return Err(RegisterError::TooMany);
        }
        reg.push(Registered {
            name: name.to_string(),
            target,
        });
        let n = reg.len();
        drop(reg);
        self.count.send_replace(n);
        Ok(())
    }

    /// Ends the registration window (init is over).
    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Registered extensions, in registration order.
    pub fn registered(&self) -> Vec<Registered> {
        self.registered.lock().expect("registry lock").clone()
    }

    /// Whether any extension registered.
    pub fn any_registered(&self) -> bool {
        *self.count.borrow() > 0
    }

    /// Waits until every launched extension registered.
    pub async fn all_registered(&self) {
        let want = self.launched.len();
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n >= want).await;
    }

    /// Launched extensions that have not registered.
    pub fn missing(&self) -> Vec<String> {
        let reg = self.registered.lock().expect("registry lock");
        self.launched
            .iter()
            .filter(|l| !reg.iter().any(|r| &r.name == *l))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> ExtensionTarget {
        ExtensionTarget::Push(SocketAddr::from(([127, 0, 0, 1], port)))
    }

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
}
