//! Running one scenario over several transports: [`transport_tests!`]
//! makes one `#[test]` per transport, so each shows (and fails) by itself.

use std::future::Future;

/// Runs `future` to completion on a fresh current-thread Tokio runtime with
/// I/O and time enabled, as `#[tokio::test]` does.
///
/// # Panics
/// When the runtime cannot be built, and when `future` panics.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
        .block_on(future)
}

/// For each scenario, an `async fn NAME(transport: Transport)` in scope,
/// makes a module `NAME` with one `#[test]` per listed transport (`stdio`,
/// `websocket`, `in_process`), each running the scenario with that
/// transport on its own runtime ([`block_on`]). The tests are named
/// `NAME::stdio`, `NAME::in_process`, ...
///
/// ```ignore
/// async fn lifecycle_is_enforced(transport: Transport) { /* ... */ }
///
/// exec_testkit::transport_tests! {
///     lifecycle_is_enforced: [stdio, in_process],
/// }
/// ```
#[macro_export]
macro_rules! transport_tests {
    (@transport stdio) => {
        $crate::Transport::Stdio
    };
    (@transport websocket) => {
        $crate::Transport::WebSocket
    };
    (@transport in_process) => {
        $crate::Transport::InProcess
    };
    ($($scenario:ident: [$($transport:ident),+ $(,)?]),+ $(,)?) => {
        $(
            mod $scenario {
                $(
                    #[test]
                    fn $transport() {
                        $crate::block_on(super::$scenario(
                            $crate::transport_tests!(@transport $transport),
                        ));
                    }
                )+
            }
        )+
    };
}
