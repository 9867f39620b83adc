//! [`Answer`]: a method's result plus what must happen once its response is
//! queued for the client.

/// An action run after a response was queued (for `process/start`: letting
/// the process's notifications out, which must not overtake the response).
pub(crate) type AfterQueued = Box<dyn FnOnce() + Send>;

/// A method's result and its optional after-queued action.
pub(crate) struct Answer<R> {
    /// The `*Response` the client receives.
    pub(crate) result: R,
    /// Run once the response is in the connection's outbox (not run when it
    /// could not be queued because the connection is closing).
    pub(crate) after_queued: Option<AfterQueued>,
}

impl<R> Answer<R> {
    /// A result with nothing to do afterwards.
    pub(crate) fn new(result: R) -> Self {
        Self {
            result,
            after_queued: None,
        }
    }

    /// A result whose response must be queued before `action` runs.
    pub(crate) fn then(result: R, action: impl FnOnce() + Send + 'static) -> Self {
        Self {
            result,
            after_queued: Some(Box::new(action)),
        }
    }
}

impl<R> From<R> for Answer<R> {
    fn from(result: R) -> Self {
        Self::new(result)
    }
}
