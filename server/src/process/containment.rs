//! What `initialize` reports as `containment`: which mechanism kills trees
//! (a cgroup per process when [`super::cgroup`] is usable, `/proc` walks
//! otherwise) and whether a guardian kills them when the server dies.

use std::sync::atomic::{AtomicBool, Ordering};

use exec_protocol::{Containment, ContainmentMechanism};

use super::cgroup;

/// Whether this server's guardian runs (see `guardian.rs`).
static GUARDIAN_RUNNING: AtomicBool = AtomicBool::new(false);

/// Records that the guardian runs, for [`containment`].
pub(crate) fn set_guardian_running() {
    GUARDIAN_RUNNING.store(true, Ordering::Relaxed);
}

/// The containment in force, as `initialize` reports it.
pub(crate) fn containment() -> Containment {
    Containment {
        mechanism: if cgroup::server_directory().is_some() {
            ContainmentMechanism::Cgroup
        } else {
            ContainmentMechanism::ProcessTree
        },
        kill_on_server_death: GUARDIAN_RUNNING.load(Ordering::Relaxed),
    }
}
