//! The transports: how messages reach a [`Connection`](crate::connection::Connection)
//! and how its outbox reaches the client. Each connection has one reader loop
//! and one writer task; the outbox between them is bounded.

pub mod stdio;
pub mod ws;
