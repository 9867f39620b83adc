//! This server's id: the prefix of its tree markers and the name of its
//! cgroup, unique among the servers a machine runs.

use std::sync::LazyLock;

/// This server's name for its tree markers and its cgroup: its pid and 32
/// random bits (`<pid>.<8 hex digits>`). The pid alone is not unique: two
/// servers in different PID namespaces may share one, and a pid is reused.
pub(crate) fn server_id() -> &'static str {
    static ID: LazyLock<String> = LazyLock::new(|| {
        let mut random = [0_u8; 4];
        // Without randomness the pid alone still names this server here.
        let _ = getrandom::fill(&mut random);
        format!("{}.{:08x}", std::process::id(), u32::from_ne_bytes(random))
    });
    &ID
}
