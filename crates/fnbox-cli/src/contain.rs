//! What `fnbox run` and `fnbox serve` set up before any instance starts: where zip packages
//! are extracted (under the data dir, so a later start finds what a killed fnbox left), the
//! sweep of those leftovers, the containment mode and the watchdog that ends every instance
//! process when fnbox itself ends.

use std::path::Path;

use fnbox_engine::contain::{Containment, OPT_OUT};
use fnbox_limits::{MemoryController, Watchdog};

/// This run's extraction directory, removed (when empty: every package's own directory is
/// removed with the package) when dropped. Declare it before the packages so it drops last.
pub(crate) struct Extraction(std::path::PathBuf);

impl Drop for Extraction {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Extraction goes to `<data dir>/packages/<pid>-<start>/`; directories of earlier runs that
/// are no longer alive are removed first. Call before any package is loaded.
pub(crate) fn prepare_extraction(data_dir: &Path) -> Extraction {
    let parent = data_dir.join("packages");
    let removed = fnbox_limits::sweep_run_dirs(&parent);
    if removed > 0 {
        eprintln!(
            "removed {removed} extraction director{} left by an fnbox that was killed ({})",
            if removed == 1 { "y" } else { "ies" },
            parent.display()
        );
    }
    let dir = parent.join(fnbox_limits::run_dir_name());
    fnbox_package::set_extraction_dir(dir.clone());
    Extraction(dir)
}

/// `Some("FNBOX_CONTAINMENT=off")` when the environment opts out of containment.
fn opt_out() -> Option<String> {
    match std::env::var("FNBOX_CONTAINMENT") {
        Ok(v) if v.eq_ignore_ascii_case("off") => Some(OPT_OUT.to_string()),
        _ => None,
    }
}

/// Decides the containment mode, sweeps the process groups a killed fnbox left and starts the
/// watchdog. Returns the mode, its start-up line and the watchdog (keep it as long as fnbox
/// runs).
pub(crate) async fn setup(memory: &MemoryController) -> (Containment, String, Option<Watchdog>) {
    let (containment, line) = Containment::detect(opt_out().as_deref(), memory);
    let stale = containment.clone();
    let _ = tokio::task::spawn_blocking(move || stale.cleanup_stale()).await;
    let watchdog = match Watchdog::start(memory, containment.pids()) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot start the watchdog (/bin/sh): {e}; processes a function leaves behind outlive a killed fnbox until the next start");
            None
        }
    };
    (containment, line, watchdog)
}

/// The `PATH` instances get: fnbox's own, without the directories a contained function's uid
/// cannot reach (e.g. root's `~/.pyenv/shims`, which would shadow the system `python3`).
pub(crate) fn host_path(containment: &Containment) -> Option<String> {
    let path = std::env::var("PATH").ok()?;
    Some(match containment.mode() {
        fnbox_engine::contain::Mode::On => fnbox_engine::contain::reachable_path(&path),
        _ => path,
    })
}
