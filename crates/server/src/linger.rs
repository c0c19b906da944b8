//! Lingering: a request answered before its body was read (refused,
//! busy, unknown route) still has that body on its way. Closing the
//! connection on it makes clients that send the whole body before
//! reading (most do) see a broken pipe instead of the answer, so what a
//! handler leaves unread is read and dropped in the background, up to a
//! byte bound and within the body deadline, while the answer goes out.

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The body a handler gets, sharing the real one with its [`Leftover`].
struct Shared(Arc<Mutex<Option<Body>>>);

/// Whatever of the body the handler did not read.
pub(crate) struct Leftover(Arc<Mutex<Option<Body>>>);

/// Splits `body` into what the handler reads and what is left afterwards.
pub(crate) fn split(body: Body) -> (Body, Leftover) {
    let cell = Arc::new(Mutex::new(Some(body)));
    (Body::new(Shared(cell.clone())), Leftover(cell))
}

impl Leftover {
    /// Reads and drops the rest of the body in the background, at most
    /// `limit` bytes; past that the connection is closed as before.
    pub(crate) fn drain(self, limit: usize) {
        let Some(body) = self.0.lock().take() else {
            return;
        };
        if http_body::Body::is_end_stream(&body) {
            return;
        }
        tokio::spawn(sundial_api::body::discard(body, limit));
    }
}

impl http_body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.0.lock().as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}
