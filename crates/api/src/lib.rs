//! Sundial's wire APIs. Each folder turns its protocol into
//! `sundial-model` values, makes one engine call, and renders the answer in
//! its own shape.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod baidu;
pub mod bk;
pub mod body;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod limits;
pub mod opentsdb;

/// The request path exactly as the client sent it, kept in the request
/// extensions when the listener rewrites the URI for routing (signatures
/// cover the path as received).
#[derive(Debug, Clone)]
pub struct ReceivedPath(pub String);
