//! The registry of the live managed processes of every table, so that server
//! shutdown ([`super::kill_all`]) reaches processes of connections it does not
//! know, and the tree marker prefix all of them share.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use super::managed::ManagedProcess;
use crate::sync::lock;

/// Live managed processes of all connections by serial, for `kill_all`.
static LIVE: LazyLock<Mutex<HashMap<u64, Weak<ManagedProcess>>>> = LazyLock::new(Default::default);

/// Registers a live managed process for `kill_all`.
pub(crate) fn register_live(serial: u64, process: &Arc<ManagedProcess>) {
    lock(&LIVE).insert(serial, Arc::downgrade(process));
}

/// Removes a process from the `kill_all` registry (it closed).
pub(crate) fn unregister_live(serial: u64) {
    lock(&LIVE).remove(&serial);
}

/// Every registered live managed process.
pub(crate) fn live_processes() -> Vec<Arc<ManagedProcess>> {
    lock(&LIVE).values().filter_map(Weak::upgrade).collect()
}

/// The marker prefix shared by every process this server started.
pub(crate) fn server_marker_prefix() -> String {
    format!("{}/", super::identity::server_id())
}
