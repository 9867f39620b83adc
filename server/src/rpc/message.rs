//! [`MessageText`]: one incoming message, owned, and the way its `params`
//! reach the method without a copy.
//!
//! jsonrpsee hands a method its params as `Params<'static>`, which can only
//! be had by copying borrowed text; a 60 MB request was copied twice that
//! way before its params were parsed. Instead the request travels with no
//! params of jsonrpsee's, and the message itself rides in the request's
//! extensions ([`MessageParams`]) with the place of its `params` member;
//! the method parses them from there and lets go of the message at once, so
//! a huge request costs its own text and its parsed params, once each.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use jsonrpsee::types::Extensions;
use jsonrpsee::types::Request;

use crate::sync::lock;

/// The text of one incoming message (a WebSocket frame, a stdio line, an
/// in-process message), owned and cheap to share: the transport's own
/// buffer, never a copy of it.
#[derive(Clone)]
pub struct MessageText(Arc<dyn AsRef<str> + Send + Sync>);

impl MessageText {
    /// Wraps a transport's text (a `String`, a WebSocket frame's bytes).
    pub fn new(text: impl AsRef<str> + Send + Sync + 'static) -> Self {
        Self(Arc::new(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        (*self.0).as_ref()
    }
}

impl From<String> for MessageText {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl std::fmt::Debug for MessageText {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "MessageText({} bytes)", self.as_str().len())
    }
}

/// A request's `params`, as a place in its message: the extension the
/// method takes them from. jsonrpsee clones a request's extensions (one
/// copy stays with the response), so the message sits behind a shared
/// slot, and the first taker empties it for every clone.
#[derive(Clone)]
pub(crate) struct MessageParams(Arc<Mutex<Option<ParamsText>>>);

/// A message and the place of its `params` in it.
type ParamsText = (MessageText, Range<usize>);

impl MessageParams {
    /// Takes the params text out, with the message that holds it; `None`
    /// when they were taken already. Dropping the result lets go of the
    /// message.
    pub(crate) fn take(&self) -> Option<ParamsText> {
        lock(&self.0).take()
    }
}

/// The request `request`, parsed from `text`, made `'static` without
/// copying its params: they stay in `text`, which rides in the request's
/// extensions as [`MessageParams`]; the method name and id are copied (both
/// are small).
pub(crate) fn owned_request(request: Request<'_>, text: &MessageText) -> Request<'static> {
    let Request {
        id,
        method,
        params,
        extensions,
        ..
    } = request;
    let params = params.map(|params| match place_in(text.as_str(), params.get()) {
        Some(range) => (text.clone(), range),
        // Not a slice of the message (never so when parsing borrowed): the
        // params are their own message.
        None => {
            let params = params.get().to_owned();
            let length = params.len();
            (MessageText::from(params), 0..length)
        }
    });
    let mut owned = Request::owned(method.into_owned(), None, id.into_owned());
    owned.extensions = extensions;
    if let Some(params) = params {
        owned
            .extensions
            .insert(MessageParams(Arc::new(Mutex::new(Some(params)))));
    }
    owned
}

/// Where `part` lies in `whole`, when it is a slice of it.
fn place_in(whole: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let range = start..start.checked_add(part.len())?;
    let slice = whole.get(range.clone())?;
    (slice.as_ptr() == part.as_ptr()).then_some(range)
}

/// Runs `parse` on the params text of a request made by [`owned_request`]
/// (`None` when the request had no `params`), then lets go of the message.
pub(crate) fn with_params<T>(extensions: &Extensions, parse: impl FnOnce(Option<&str>) -> T) -> T {
    match extensions
        .get::<MessageParams>()
        .and_then(MessageParams::take)
    {
        Some((text, range)) => parse(text.as_str().get(range)),
        None => parse(None),
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::rpc::incoming::{Incoming, parse};

    /// The request `text` holds.
    fn parsed(text: &MessageText) -> Request<'_> {
        match parse(text.as_str(), 1024) {
            Incoming::Request { request, .. } => request,
            _ => panic!("not a request: {text:?}"),
        }
    }

    #[test]
    fn the_params_are_taken_once_from_the_message() {
        let text = MessageText::from(String::from(
            r#"{"id":1,"method":"m","params":{"a":[1,2]}}"#,
        ));
        let owned = owned_request(parsed(&text), &text);
        assert_eq!(owned.method_name(), "m");
        assert!(owned.params.is_none());
        let clone = owned.extensions.clone();
        assert_eq!(
            with_params(&owned.extensions, |params| params.map(str::to_owned)),
            Some(String::from(r#"{"a":[1,2]}"#))
        );
        // Taken through one clone of the extensions, gone from every clone.
        assert_eq!(
            with_params(&clone, |params| params.map(str::to_owned)),
            None
        );
    }

    #[test]
    fn a_request_without_params_has_none() {
        let text = MessageText::from(String::from(r#"{"id":1,"method":"m"}"#));
        let owned = owned_request(parsed(&text), &text);
        assert!(with_params(&owned.extensions, |params| params.is_none()));
    }
}
