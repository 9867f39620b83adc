//! The guardian: a small process the `exec-server` binary starts beside
//! itself, so that the trees of managed processes die with the server even
//! when the server dies by SIGKILL (or a crash), which runs none of the
//! server's own shutdown.
//!
//! The server keeps the write end of a pipe (close-on-exec, so no managed
//! child inherits it) and gives the read end to the guardian as its stdin.
//! The guardian reads until end of file, which comes exactly when the last
//! copy of the write end closes: when the server process is gone, however it
//! ended. It then kills the server's cgroup (see `process/cgroup.rs`) and
//! sweeps `/proc` for every process carrying the server's tree marker,
//! removes the cgroup directories and exits. After a clean shutdown the
//! server [`release`]s it first (one byte down the pipe): its own shutdown
//! killed every tree and swept `/proc`, so the guardian only kills and
//! removes the cgroup, without a second `/proc` sweep (which reads every
//! process's environment and would cost each short `exec-server exec`
//! tens of milliseconds of CPU).
//!
//! The guardian leads a session of its own and blocks SIGINT, SIGTERM,
//! SIGHUP and SIGQUIT, so neither a terminal's signals nor a kill of the
//! server's process group take it first; only SIGKILL to the guardian
//! itself does, and then a server death is no longer covered
//! (`initialize` still reported `killOnServerDeath: true`).

use std::ffi::OsString;
use std::io::{self, Read as _};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};

use crate::sync::lock;

/// The hidden first argument that makes `exec-server` the guardian:
/// `exec-server __exec-guardian SERVER_ID [CGROUP_DIRECTORY]` (the id of the
/// server's tree markers: its pid and 32 random bits).
pub const GUARDIAN_COMMAND: &str = "__exec-guardian";

/// The server's end of the pipe to its guardian, held until the process
/// ends. A mutex, not a once-cell: two concurrent starts must not spawn two
/// guardians, one of which would see its pipe close at once.
static LIFELINE: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Starts the guardian of this server (once; later calls do nothing), from
/// the `exec-server` binary at `/proc/self/exe` (which works even when the
/// file was replaced since). Call it after
/// [`crate::process::init_cgroup_containment`], which makes the cgroup it
/// must kill. Only the `exec-server` binary may call it: in a library host
/// `/proc/self/exe` is the host program.
///
/// # Errors
/// The pipe or the guardian process could not be created.
pub fn start() -> io::Result<()> {
    let mut lifeline = lock(&LIFELINE);
    if lifeline.is_some() {
        return Ok(());
    }
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut command = Command::new("/proc/self/exe");
    command
        .arg(GUARDIAN_COMMAND)
        .arg(crate::process::server_id())
        .stdin(Stdio::from(read_end))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(directory) = crate::process::cgroup_directory() {
        command.arg(directory);
    }
    // Not waited for: the guardian leaves this process's group, so the
    // orphan reaper collects it should it ever end first.
    drop(command.spawn()?);
    *lifeline = Some(write_end);
    Ok(())
}

/// Tells the guardian that this server's shutdown killed every managed tree
/// (call it after `Shutdown::finish`, just before the process exits), so it
/// skips its `/proc` sweep. Does nothing without a guardian; a write that
/// fails leaves the guardian on its full path, which is only slower.
pub fn release() {
    if let Some(lifeline) = lock(&LIFELINE).as_ref() {
        let _ = rustix::io::write(lifeline, &[RELEASED]);
    }
}

/// The byte [`release`] sends.
const RELEASED: u8 = b'r';

/// Whether this server's guardian was started (what `initialize` reports
/// as `containment.killOnServerDeath`).
pub fn is_running() -> bool {
    lock(&LIFELINE).is_some()
}

/// Runs the guardian with the arguments after [`GUARDIAN_COMMAND`]: waits
/// for the server to end, then kills and removes what it left. Returns only
/// then, with the error that stopped it, if any.
pub fn run(mut arguments: impl Iterator<Item = OsString>) -> io::Result<()> {
    let server_id = arguments
        .next()
        .and_then(|id| id.into_string().ok())
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("usage: {GUARDIAN_COMMAND} SERVER_ID [CGROUP_DIRECTORY]"),
            )
        })?;
    let cgroup = arguments.next().map(PathBuf::from);
    // Fails only when already a group leader, which a fresh child is not.
    let _ = nix::unistd::setsid();
    let mut blocked = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        blocked.add(signal);
    }
    blocked.thread_block().map_err(io::Error::from)?;
    if wait_for_end_of_file() {
        crate::process::remove_released_server_cgroup(cgroup.as_deref());
    } else {
        crate::process::kill_dead_server_trees(&server_id, cgroup.as_deref());
    }
    Ok(())
}

/// Reads stdin until end of file (or an error other than an interruption,
/// which means the same: the server's end is gone); whether the server
/// [`release`]d the guardian before it ended.
fn wait_for_end_of_file() -> bool {
    let mut stdin = io::stdin().lock();
    let mut buffer = [0_u8; 64];
    let mut released = false;
    loop {
        match stdin.read(&mut buffer) {
            Ok(0) => return released,
            Ok(length) => released |= buffer[..length].contains(&RELEASED),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return released,
        }
    }
}
