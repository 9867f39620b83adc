//! The one table of the signals the protocol names, and the two lookups
//! derived from it: protocol to OS (`process/signal`, the `exec` command's
//! exit status) and OS to protocol (the signal that ended a process); and
//! the exit code the wire reports for a wait status.

use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;

use exec_protocol::Signal;
use nix::sys::signal::Signal as NixSignal;

/// Every signal the protocol names, in the order of [`Signal`]'s variants (so
/// a protocol signal indexes it; checked below at compile time). Each entry
/// holds all three names of a signal without copying any: the protocol value
/// (whose `Display` is its wire name, `interrupt`) and the OS signal (whose
/// `as_str()` is its POSIX name, `SIGINT`, and `as i32` its number).
const SIGNALS: [(Signal, NixSignal); 9] = [
    (Signal::Interrupt, NixSignal::SIGINT),
    (Signal::Terminate, NixSignal::SIGTERM),
    (Signal::Kill, NixSignal::SIGKILL),
    (Signal::Hangup, NixSignal::SIGHUP),
    (Signal::Quit, NixSignal::SIGQUIT),
    (Signal::User1, NixSignal::SIGUSR1),
    (Signal::User2, NixSignal::SIGUSR2),
    (Signal::Continue, NixSignal::SIGCONT),
    (Signal::Stop, NixSignal::SIGSTOP),
];

// A table out of variant order fails the build, so indexing by a variant
// finds that variant's entry.
const _: () = {
    let mut index = 0;
    while index < SIGNALS.len() {
        assert!(
            SIGNALS[index].0 as usize == index,
            "SIGNALS must list the protocol signals in variant order"
        );
        index += 1;
    }
};

/// The POSIX signal a protocol signal names (`interrupt` is SIGINT, ...).
pub fn nix_signal(signal: Signal) -> NixSignal {
    // Every variant has its entry at its own index (the compile-time check
    // above, and the schema-driven test below for completeness).
    SIGNALS[signal as usize].1
}

/// The protocol name of an OS signal number, `None` when it has none.
pub(crate) fn protocol_signal(raw: i32) -> Option<Signal> {
    SIGNALS
        .iter()
        .find(|(_, os)| *os as i32 == raw)
        .map(|(protocol, _)| *protocol)
}

/// What the wire's `exitCode` is after a wait status: the exit status, or
/// 128 + N after signal N (the shell's convention, and what `exec-server
/// exec` exits with), or -1 when waiting failed (`None`). Codex's client
/// reads `exitCode` as a plain `i32`, so it is never null once exited.
pub(crate) fn wire_exit_code(status: Option<ExitStatus>) -> i32 {
    let Some(status) = status else {
        return -1;
    };
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        // Neither happens after a wait for a terminated child (a stopped or
        // continued status is not an exit); treat it like a failed wait.
        (None, None) => -1,
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::Value;

    use super::*;

    /// Every value the schema allows for `Signal`, with the POSIX name its
    /// description starts with (`SIGINT, as Ctrl-C sends.`): the generated
    /// enum has no list of its variants, and the schema is where a new one
    /// would appear.
    fn schema_signals() -> Vec<(Signal, String)> {
        let schema: Value =
            serde_json::from_str(exec_protocol::SCHEMA_JSON).expect("the schema is JSON");
        schema["$defs"]["Signal"]["oneOf"]
            .as_array()
            .expect("Signal is a oneOf of constants")
            .iter()
            .map(|choice| {
                let name = choice["const"].as_str().expect("a constant name");
                let description = choice["description"].as_str().expect("a description");
                let posix: String = description
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                (name.parse().expect("a protocol signal"), posix)
            })
            .collect()
    }

    #[test]
    fn every_protocol_signal_round_trips_through_its_posix_signal() {
        let signals = schema_signals();
        assert_eq!(signals.len(), SIGNALS.len());
        for (signal, posix) in signals {
            let os = nix_signal(signal);
            assert_eq!(os.as_str(), posix, "{signal}");
            assert_eq!(protocol_signal(os as i32), Some(signal), "{signal} as {os}");
        }
    }

    #[test]
    fn exit_codes_are_the_status_or_128_plus_the_signal() {
        // A raw wait status holds an exit code in bits 8-15 and a signal in
        // bits 0-6.
        assert_eq!(wire_exit_code(Some(ExitStatus::from_raw(7 << 8))), 7);
        assert_eq!(wire_exit_code(Some(ExitStatus::from_raw(0))), 0);
        assert_eq!(wire_exit_code(Some(ExitStatus::from_raw(9))), 137);
        assert_eq!(wire_exit_code(Some(ExitStatus::from_raw(15))), 143);
        let winch = NixSignal::SIGWINCH as i32;
        assert_eq!(
            wire_exit_code(Some(ExitStatus::from_raw(winch))),
            128 + winch
        );
        assert_eq!(wire_exit_code(None), -1);
    }

    #[test]
    fn signals_without_a_protocol_name_have_none() {
        assert_eq!(protocol_signal(NixSignal::SIGWINCH as i32), None);
        assert_eq!(protocol_signal(0), None);
        assert_eq!(protocol_signal(-1), None);
    }
}
