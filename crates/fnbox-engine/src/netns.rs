//! Per-instance network namespaces: each isolated instance gets a network of its own with
//! only a loopback interface, so the fixed ports of FunctionGraph / Lambda (8000, 8081-8090)
//! never collide between instances, and the function has no route out.
//!
//! # Design
//! - **No `ip netns`, no bind mounts.** A dedicated helper thread calls
//!   `unshare(CLONE_NEWNET)` (allowed per thread, even in a multi-threaded process), opens
//!   `/proc/thread-self/ns/net` and brings `lo` up (`SIOCSIFFLAGS`). The namespace lives as long
//!   as that fd, the helper thread or a process inside it: dropping the [`NetNs`] and ending the
//!   instance's processes destroys it, so nothing is left on disk, even after a SIGKILL of fnbox
//!   (the instance's processes then keep it until they end; `MemoryController::cleanup_stale`
//!   kills them at the next start in cgroup mode).
//! - **Processes join before `exec`**: [`NetNs::pre_exec`] runs `setns(fd, CLONE_NEWNET)` in
//!   the forked child (async-signal-safe).
//! - **fnbox's own sockets** are created by the helper thread, which stays inside the namespace
//!   and answers requests over a channel: a socket stays in the namespace it was created in,
//!   whichever thread uses it later. The instance API listener (`127.0.0.1:0` as seen inside)
//!   and every outgoing connection (invoke pushes to extensions, telemetry listeners, the HTTP
//!   function's port 8000) come from there ([`NetNs::connector`]). Requests go over an
//!   unbounded channel (sending never blocks) and each answer comes back on a
//!   `tokio::sync::oneshot` that the caller awaits, so a tokio worker is never parked on the
//!   helper thread.
//! - **Fallback**: [`probe`] tells whether namespaces can be created here; when they cannot
//!   (not root, seccomp, no CAP_SYS_ADMIN), fnbox runs every instance on the host loopback and
//!   functions with fixed ports one instance at a time.
//!
//! # Limitations
//! - Unprivileged user namespaces are not used: `unshare(CLONE_NEWUSER)` is refused in a
//!   multi-threaded process, so a non-root fnbox falls back to the host network.
//! - No outbound mode besides `network: host` (no veth / NAT).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::sync::Arc;

use fnbox_telemetry::connector::SocketFuture;
use fnbox_telemetry::{Connector, SocketFactory};
use tokio::sync::oneshot;

/// How instances are networked, engine-wide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// One network namespace per instance (functions with `network: host` excepted).
    Isolated,
    /// Every instance on the host's network (loopback shared).
    Host,
}

impl NetworkMode {
    /// Isolated when namespaces can be created here, unless `forced_host` names why the host
    /// network was asked for (the CLI passes `FNBOX_NETWORK=host`); returns the mode and the
    /// start-up line that says which and why.
    pub fn detect(forced_host: Option<&str>) -> (NetworkMode, String) {
        if let Some(why) = forced_host {
            return (
                NetworkMode::Host,
                format!("network: host loopback ({why}); {HOST_NOTE}"),
            );
        }
        match probe() {
            Ok(()) => (
                NetworkMode::Isolated,
                "network: isolated (one network namespace per instance, loopback only, no route out; `network: host` in function.yaml opts out)".to_string(),
            ),
            Err(why) => (
                NetworkMode::Host,
                format!("network: host loopback ({why}); {HOST_NOTE}"),
            ),
        }
    }
}

const HOST_NOTE: &str = "functions with extensions or HTTP servers run one instance at a time";

/// Creates and drops one namespace; `Err` says why isolation is not possible.
pub fn probe() -> Result<(), String> {
    NetNs::create().map(drop).map_err(|e| e.to_string())
}

/// What the helper thread does inside the namespace; the answer goes back on the oneshot.
enum Request {
    /// An unconnected TCP socket.
    Socket(oneshot::Sender<io::Result<OwnedFd>>),
    /// A listener bound to `127.0.0.1:port`.
    Listen(u16, oneshot::Sender<io::Result<std::net::TcpListener>>),
}

/// One network namespace with `lo` up. Dropping it stops the helper thread and closes the
/// namespace fd; the namespace ends when the last process inside it ends too.
pub struct NetNs {
    fd: OwnedFd,
    inode: u64,
    /// To the helper thread. Unbounded, so `send` never blocks; dropping it (with the
    /// `NetNs`) ends the thread.
    requests: mpsc::Sender<Request>,
}

impl std::fmt::Debug for NetNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetNs(net:[{}])", self.inode)
    }
}

/// Error message naming the syscall that failed.
fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    let name = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    io::Error::new(e.kind(), format!("{what} failed: {name}"))
}

impl NetNs {
    /// A fresh namespace with `lo` up.
    pub fn create() -> io::Result<Arc<NetNs>> {
        let (req_tx, req_rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<OwnedFd>>(1);
        std::thread::Builder::new()
            .name("fnbox-netns".into())
            .spawn(move || {
                let setup = || -> io::Result<OwnedFd> {
                    // SAFETY: unshare(2) takes no pointers; with CLONE_NEWNET alone it moves
                    // only this helper thread (which runs nothing but socket requests) into a
                    // new network namespace, allowed even in a multi-threaded process.
                    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                        return Err(os_err("unshare(CLONE_NEWNET)"));
                    }
                    let file = std::fs::File::open("/proc/thread-self/ns/net")?;
                    loopback_up()?;
                    Ok(OwnedFd::from(file))
                };
                let ok = match setup() {
                    Ok(fd) => ready_tx.send(Ok(fd)).is_ok(),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        false
                    }
                };
                if !ok {
                    return;
                }
                // Serve socket requests until the NetNs is dropped.
                while let Ok(req) = req_rx.recv() {
                    match req {
                        Request::Socket(reply) => {
                            let _ = reply.send(tcp_socket());
                        }
                        Request::Listen(port, reply) => {
                            let _ = reply.send(std::net::TcpListener::bind(SocketAddrV4::new(
                                Ipv4Addr::LOCALHOST,
                                port,
                            )));
                        }
                    }
                }
            })?;
        let fd = ready_rx
            .recv()
            .map_err(|_| io::Error::other("network namespace thread ended"))??;
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        Ok(Arc::new(NetNs {
            fd,
            inode,
            requests: req_tx,
        }))
    }

    /// The namespace's inode (as in `/proc/<pid>/ns/net` → `net:[<inode>]`).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// The namespace fd, for [`NetNs::pre_exec`].
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends a request to the helper thread and awaits its answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<io::Result<T>>) -> Request,
    ) -> io::Result<T> {
        let ended = || io::Error::other("network namespace thread ended");
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).map_err(|_| ended())?;
        rx.await.map_err(|_| ended())?
    }

    /// An unconnected, non-blocking TCP socket inside the namespace.
    pub async fn socket(&self) -> io::Result<OwnedFd> {
        self.ask(Request::Socket).await
    }

    /// A listener on `127.0.0.1:port` inside the namespace (0: any free port), non-blocking.
    pub async fn listen(&self, port: u16) -> io::Result<std::net::TcpListener> {
        let l = self.ask(|tx| Request::Listen(port, tx)).await?;
        l.set_nonblocking(true)?;
        Ok(l)
    }

    /// A hyper connector whose connections start inside the namespace.
    pub fn connector(self: &Arc<Self>) -> Connector {
        let ns = self.clone();
        let factory: SocketFactory = Arc::new(move || -> SocketFuture {
            let ns = ns.clone();
            Box::pin(async move { ns.socket().await })
        });
        Connector::with_factory(factory)
    }

    /// `setns(fd, CLONE_NEWNET)` for a forked child before `exec`: async-signal-safe.
    pub fn pre_exec(fd: RawFd) -> io::Result<()> {
        // SAFETY: setns(2) takes no pointers and is async-signal-safe (we run between fork
        // and exec); `fd` is the namespace descriptor the parent's `NetNs` keeps open.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK)` in the calling thread's namespace.
fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; failure is the negative value handled below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(os_err("socket"));
    }
    // SAFETY: `fd` was just returned by socket(2): valid, open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets IFF_UP on `lo` in the calling thread's namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) takes no pointers; failure is the negative value handled below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(os_err("socket"));
    }
    // SAFETY: `sock` was just returned by socket(2): valid, open and owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is a C struct of integers, a byte array and a union of plain-data
    // members (no references, no niches), so all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: both ioctls get a pointer to `req`, a live, initialised ifreq of the size they
    // expect, on the open socket `sock`; SIOCGIFFLAGS fills `ifru_flags`, so reading that
    // union member afterwards reads initialised data; SIOCSIFFLAGS only reads `req`.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(os_err("ioctl(SIOCGIFFLAGS, lo)"));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(os_err("ioctl(SIOCSIFFLAGS, lo up)"));
        }
    }
    Ok(())
}

/// Distinct network namespaces in use on this machine: those of every thread
/// (`/proc/*/task/*/ns/net`) and those held open by descriptors of this process (for tests and
/// diagnostics).
pub fn namespace_inodes() -> std::collections::BTreeSet<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for proc in procs.flatten() {
        let Ok(tasks) = std::fs::read_dir(proc.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(m) = std::fs::metadata(task.path().join("ns/net")) {
                out.insert(m.ino());
            }
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        for fd in fds.flatten() {
            let is_net = std::fs::read_link(fd.path())
                .is_ok_and(|l| l.to_string_lossy().starts_with("net:["));
            if is_net {
                if let Ok(m) = std::fs::metadata(fd.path()) {
                    out.insert(m.ino());
                }
            }
        }
    }
    out
}

/// The network namespace inode of process `pid`.
pub fn namespace_of(pid: i32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests below create namespaces and look at which ones exist; run them one at a time
    /// so that one test's namespaces (and a reused inode number) do not blur the other's view.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn create_or_fail() -> Arc<NetNs> {
        NetNs::create().unwrap_or_else(|e| {
            panic!(
                "cannot create a network namespace ({e}): these tests need CAP_SYS_ADMIN \
                 (run them as root, as CI does)"
            )
        })
    }

    #[tokio::test]
    async fn loopbacks_are_separate() {
        let _serial = SERIAL.lock().await;
        let a = create_or_fail();
        let b = create_or_fail();
        assert_ne!(a.inode(), b.inode());
        let la = a.listen(0).await.unwrap();
        let port = la.local_addr().unwrap().port();
        // The same port is free in b (its own loopback) …
        let _lb = b.listen(port).await.unwrap();
        // … and a connection on the host loopback never reaches a's listener. Once the attempt
        // is over (refused, or accepted by something else on the host), a connection that had
        // reached a's listener would already wait in its accept queue.
        let _maybe = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert_eq!(
            la.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "a's listener accepted a connection from the host"
        );
        // A socket from a's factory does reach it: a completed connect is in the accept queue.
        let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(
            a.socket().await.unwrap(),
        ));
        let _stream = socket
            .connect((Ipv4Addr::LOCALHOST, port).into())
            .await
            .expect("a's own socket connects to a's listener");
        assert!(la.accept().is_ok(), "a's own socket reaches a's listener");
    }

    /// Tasks of this process inside the namespace `inode` (the helper thread while it runs).
    fn own_tasks_in(inode: u64) -> usize {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir("/proc/self/task")
            .expect("reading /proc/self/task")
            .flatten()
            .filter(|t| std::fs::metadata(t.path().join("ns/net")).is_ok_and(|m| m.ino() == inode))
            .count()
    }

    /// Descriptors of this process that refer to the namespace `inode` itself.
    fn own_fds_on(inode: u64) -> usize {
        let target = format!("net:[{inode}]");
        std::fs::read_dir("/proc/self/fd")
            .expect("reading /proc/self/fd")
            .flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
            })
            .count()
    }

    /// Creating, using and dropping namespaces leaves nothing behind in this process: no
    /// helper thread inside any of them, no descriptor on any of them.
    #[tokio::test]
    async fn dropped_namespaces_leave_nothing_behind() {
        let _serial = SERIAL.lock().await;
        let mut inodes = Vec::new();
        for _ in 0..5 {
            let ns = create_or_fail();
            let inode = ns.inode();
            assert_ne!(inode, 0, "the namespace fd has an inode");
            let listener = ns.listen(0).await.unwrap();
            let socket = ns.socket().await.unwrap();
            assert!(
                namespace_inodes().contains(&inode),
                "net:[{inode}] is not visible while in use"
            );
            assert_eq!(own_tasks_in(inode), 1, "one helper thread in net:[{inode}]");
            assert_eq!(own_fds_on(inode), 1, "the NetNs holds net:[{inode}] open");
            drop((listener, socket, ns));
            inodes.push(inode);
        }
        // The helper threads end once their request channel closes, which they notice on
        // their own schedule: wait for that (the bound only keeps a regression from hanging).
        // Only this process's own threads and descriptors are checked: other processes on
        // the machine may meanwhile get a freed inode number for a namespace of their own.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left: Vec<(u64, usize, usize)> = inodes
                .iter()
                .map(|&i| (i, own_tasks_in(i), own_fds_on(i)))
                .filter(|&(_, tasks, fds)| tasks + fds > 0)
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "namespaces still held by this process after drop (inode, threads inside, \
                 descriptors): {left:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
