//! One typed async method on [`ExecClient`] per client-to-server request of
//! the protocol, generated from the method table with
//! [`exec_protocol::for_each_request!`]: a request added to the schema gets
//! its method here without anyone writing it.

use crate::client::ExecClient;
use crate::error::ClientError;

/// Expands the request table into `impl ExecClient { pub async fn <snake_name>(..) }`.
macro_rules! typed_methods {
    ($(($marker:path, $snake:ident, $wire:literal, $params:path, $response:path, $direction:ident)),* $(,)?) => {
        impl ExecClient {
            $(typed_methods!(@method $direction, $marker, $snake, $wire, $params, $response);)*
        }
    };
    (@method ClientToServer, $marker:path, $snake:ident, $wire:literal, $params:path, $response:path) => {
        #[doc = concat!("Sends `", $wire, "` and returns its typed result.")]
        ///
        /// # Errors
        /// [`ClientError::Server`] for the server's JSON-RPC error (its
        /// `data.kind` in [`ClientError::kind`]); [`ClientError::Protocol`]
        /// when the result does not match the schema;
        /// [`ClientError::TransportClosed`] when the connection closes first.
        pub async fn $snake(&self, params: $params) -> Result<$response, ClientError> {
            self.connection.call::<$marker>(&params).await
        }
    };
    // A request the server sends is not the client's to call.
    (@method ServerToClient, $marker:path, $snake:ident, $wire:literal, $params:path, $response:path) => {};
}

exec_protocol::for_each_request!(typed_methods);
