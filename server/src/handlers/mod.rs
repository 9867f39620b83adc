//! Method handlers: one module per method family, with one async fn per method that takes the
//! generated `*Params` and returns the `*Response` or a [`crate::ServerError`].

pub mod fs;
