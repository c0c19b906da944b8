//! The kinds of failure every crate's error reports, so that each API maps
//! a kind to its own status and body in one place.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is wrong or asks for more than the limits allow; the
    /// message tells the client what to change.
    InvalidInput,
    NotFound,
    Conflict,
    /// The server is behind; the same request may succeed later.
    Busy,
    /// A configured quota is used up.
    Quota,
    /// The request ran past its deadline.
    Timeout,
    /// A fault of the server; logged, never shown to clients.
    Internal,
}
