//! A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/<version>/bin`), `initdb` into a temporary directory, `postgres` on
//! a free loopback port with trust authentication, as `nobody` when the tests run as root
//! (PostgreSQL refuses to run as root).
//!
//! - [`Postgres::start`]: a server of one's own (stop and start it again to test outages);
//!   stopped when dropped.
//! - [`shared`]: one server per test binary, for tests that only need a fresh database each
//!   ([`Postgres::create_database`]).
//!
//! The server is started with `PR_SET_PDEATHSIG`, so it stops when the thread that started it
//! ends: [`Postgres::start`]'s when the test's thread does, [`shared`]'s when the test
//! process exits. Without PostgreSQL installed, every start panics with the command that
//! installs it.

// Synchronous helpers around child processes: std time.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};

/// Where Debian puts the server binaries.
const PG_LIB: &str = "/usr/lib/postgresql";

/// The message when PostgreSQL is missing.
pub const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres) not found under \
    /usr/lib/postgresql/*/bin: install them with `apt-get install postgresql` \
    (or set FNBOX_PG_BIN to their directory)";

/// A running test server.
pub struct Postgres {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    user: Option<User>,
    child: Option<Child>,
}

/// The directory holding `initdb` and `postgres`: `$FNBOX_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`. Panics with [`INSTALL_HINT`] when there is none.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FNBOX_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(PG_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!("{INSTALL_HINT}"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Postgres {
    /// initdb + start on a free port; waits until it accepts connections (30 s at most).
    pub fn start() -> Postgres {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = bin_dir();
        clean_stale();
        let root = std::env::temp_dir().join(format!(
            "fnbox-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the PostgreSQL temp dir");
        let user = Uid::effective().is_root().then(|| {
            User::from_name("nobody")
                .ok()
                .flatten()
                .expect("user nobody")
        });
        if let Some(u) = &user {
            nix::unistd::chown(&root, Some(u.uid), Some(u.gid)).expect("chown the temp dir");
        }
        let mut pg = Postgres {
            bin,
            root,
            port: 0,
            user,
            child: None,
        };
        let out = pg
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(pg.data())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg.port = free_port();
        pg.resume();
        pg
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A command run as the server's user.
    fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(name));
        cmd.current_dir(&self.root);
        if let Some(u) = &self.user {
            let (uid, gid): (Uid, Gid) = (u.uid, u.gid);
            // SAFETY: between fork and exec this only makes the setgroups, setgid, setuid and
            // prctl syscalls, which are async-signal-safe, and allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
                    nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
                    nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Starts the server again after [`Postgres::stop`] (same port, same data).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::File::create(self.root.join("server.log")).expect("server log");
        if let Some(u) = &self.user {
            let _ = nix::unistd::chown(&self.root.join("server.log"), Some(u.uid), Some(u.gid));
        }
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.root)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                // Test speed: the queue's commits are still committed, just not fsynced.
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: only the prctl(PR_SET_PDEATHSIG) syscall, after the credential change of
        // `command` (which would clear it), async-signal-safe, no allocation.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(std::io::Error::from)
            });
        }
        self.child = Some(cmd.spawn().expect("spawn postgres"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("postgres exited ({status}) at start: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready within 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// Stops the server (fast shutdown: clients are disconnected) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                Signal::SIGINT,
            );
            let _ = child.wait();
        }
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/<db>` (trust authentication ignores
    /// the password: tests use one to check it is never shown).
    pub fn url(&self, db: &str) -> String {
        url(self.port, db)
    }

    /// Runs `sql` with psql on `db`; panics on failure; returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.bin, self.port, db, sql)
    }

    /// Creates a fresh database with a unique name and returns its URL.
    pub fn create_database(&self, hint: &str) -> String {
        create_database(&self.bin, self.port, hint)
    }
}

fn psql(bin: &Path, port: u16, db: &str, sql: &str) -> String {
    let out = Command::new(bin.join("psql"))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args([
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `postgres://postgres:<password>@127.0.0.1:<port>/<db>`.
fn url(port: u16, db: &str) -> String {
    format!("postgres://postgres:s3cret-pw@127.0.0.1:{port}/{db}")
}

fn create_database(bin: &Path, port: u16, hint: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let name = format!("t_{clean}_{}", SEQ.fetch_add(1, Ordering::Relaxed));
    psql(bin, port, "postgres", &format!("CREATE DATABASE {name}"));
    url(port, &name)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes the temp dirs of test processes that are gone (a shared server's dir outlives its
/// process: statics are not dropped).
fn clean_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("fnbox-pg-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !crate::process_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// One server for the whole test binary, started by the first caller on a thread that lives
/// as long as the process (so the server does too, and stops when the process exits).
pub fn shared() -> &'static SharedPostgres {
    static SHARED: OnceLock<SharedPostgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("fnbox-test-postgres".into())
            .spawn(move || {
                let pg = std::panic::catch_unwind(Postgres::start);
                match pg {
                    Ok(pg) => {
                        let _ = tx.send(Ok(SharedPostgres {
                            bin: pg.bin.clone(),
                            port: pg.port,
                            root: pg.root.clone(),
                        }));
                        // Keep the server (and this thread, its PDEATHSIG parent) alive.
                        let _keep = pg;
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(e) => {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "postgres did not start".into());
                        let _ = tx.send(Err(msg));
                    }
                }
            })
            .expect("spawn the postgres thread");
        match rx.recv().expect("the postgres thread answers") {
            Ok(s) => s,
            Err(msg) => panic!("{msg}"),
        }
    })
}

/// The handle of [`shared`].
pub struct SharedPostgres {
    bin: PathBuf,
    port: u16,
    root: PathBuf,
}

impl SharedPostgres {
    /// See [`Postgres::create_database`].
    pub fn create_database(&self, hint: &str) -> String {
        create_database(&self.bin, self.port, hint)
    }

    /// See [`Postgres::psql`].
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.bin, self.port, db, sql)
    }

    /// See [`Postgres::url`].
    pub fn url(&self, db: &str) -> String {
        url(self.port, db)
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's data and `server.log`.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
