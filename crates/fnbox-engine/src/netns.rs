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
//!   function's port 8000) come from there ([`NetNs::connector`]).
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
use std::sync::{Arc, Mutex};

use fnbox_telemetry::{Connector, SocketFactory};

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

/// What the helper thread does inside the namespace.
enum Request {
    /// An unconnected TCP socket.
    Socket(mpsc::SyncSender<io::Result<OwnedFd>>),
    /// A listener bound to `127.0.0.1:port`.
    Listen(u16, mpsc::SyncSender<io::Result<std::net::TcpListener>>),
}

/// One network namespace with `lo` up. Dropping it stops the helper thread and closes the
/// namespace fd; the namespace ends when the last process inside it ends too.
pub struct NetNs {
    fd: OwnedFd,
    inode: u64,
    requests: Mutex<mpsc::Sender<Request>>,
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
                    // SAFETY: plain syscall; affects only this thread's network namespace.
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
            requests: Mutex::new(req_tx),
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

    fn ask<T>(
        &self,
        make: impl FnOnce(mpsc::SyncSender<io::Result<T>>) -> Request,
    ) -> io::Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.requests
            .lock()
            .expect("netns lock")
            .send(make(tx))
            .map_err(|_| io::Error::other("network namespace thread ended"))?;
        rx.recv()
            .map_err(|_| io::Error::other("network namespace thread ended"))?
    }

    /// An unconnected TCP socket inside the namespace.
    pub fn socket(&self) -> io::Result<OwnedFd> {
        self.ask(Request::Socket)
    }

    /// A listener on `127.0.0.1:port` inside the namespace (0: any free port), non-blocking.
    pub fn listen(&self, port: u16) -> io::Result<std::net::TcpListener> {
        let l = self.ask(|tx| Request::Listen(port, tx))?;
        l.set_nonblocking(true)?;
        Ok(l)
    }

    /// A hyper connector whose connections start inside the namespace.
    pub fn connector(self: &Arc<Self>) -> Connector {
        let ns = self.clone();
        let factory: SocketFactory = Arc::new(move || ns.socket());
        Connector::with_factory(factory)
    }

    /// `setns(fd, CLONE_NEWNET)` for a forked child before `exec`: async-signal-safe.
    pub fn pre_exec(fd: RawFd) -> io::Result<()> {
        // SAFETY: setns is a plain syscall on a descriptor the parent keeps open.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK)` in the calling thread's namespace.
fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned descriptor is owned right away.
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
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets IFF_UP on `lo` in the calling thread's namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain syscall; owned right away.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(os_err("socket"));
    }
    // SAFETY: fresh descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS / SIOCSIFFLAGS read and write an ifreq we own.
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

    #[test]
    fn loopbacks_are_separate() {
        let Ok(a) = NetNs::create() else {
            eprintln!("skipped: no network namespaces here");
            return;
        };
        let b = NetNs::create().unwrap();
        assert_ne!(a.inode(), b.inode());
        let la = a.listen(0).unwrap();
        let port = la.local_addr().unwrap().port();
        // The same port is free in b (its own loopback) …
        let _lb = b.listen(port).unwrap();
        // … and a connection on the host loopback never reaches a's listener.
        let _maybe = std::net::TcpStream::connect(("127.0.0.1", port));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            la.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "a's listener accepted a connection from the host"
        );
        // A socket from a's factory does reach it.
        let s = std::net::TcpStream::from(a.socket().unwrap());
        let addr = libc_sockaddr(port);
        // SAFETY: connect on our own socket with a valid sockaddr_in.
        let rc = unsafe {
            libc::connect(
                s.as_raw_fd(),
                &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let errno = io::Error::last_os_error().raw_os_error();
        assert!(rc == 0 || errno == Some(libc::EINPROGRESS), "{errno:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(la.accept().is_ok(), "a's own socket reaches a's listener");
    }

    fn libc_sockaddr(port: u16) -> libc::sockaddr_in {
        // SAFETY: plain data.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        addr
    }

    #[test]
    fn cost_of_a_namespace() {
        if NetNs::create().is_err() {
            return;
        }
        let mut times: Vec<_> = (0..20)
            .map(|_| {
                let t = std::time::Instant::now();
                let ns = NetNs::create().unwrap();
                let _l = ns.listen(0).unwrap();
                t.elapsed()
            })
            .collect();
        times.sort();
        eprintln!(
            "netns create + lo up + listener: p50 {:?}, max {:?} (N=20)",
            times[10], times[19]
        );
        // The socket factory: one round trip to the helper thread per connection.
        let ns = NetNs::create().unwrap();
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            drop(ns.socket().unwrap());
        }
        eprintln!(
            "socket from the namespace: {:?} each (N=1000)",
            t.elapsed() / 1000
        );
    }
}
