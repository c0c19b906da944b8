//! Request bodies: size limits and `Content-Encoding` handling shared by
//! every HTTP API.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use std::future::Future as _;
use std::io::Read;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("cannot decode {encoding} body: {reason}")]
    Decode { encoding: String, reason: String },
    #[error("unsupported content encoding {0}")]
    UnsupportedEncoding(String),
    #[error("the request body did not arrive within {secs} s")]
    TimedOut { secs: u64 },
    #[error("reading the request body failed: {0}")]
    Read(String),
}

/// The error a request body gives once its deadline has passed (see
/// [`Deadline`]); readers report it as [`BodyError::TimedOut`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {secs} s")]
pub struct BodyTimedOut {
    pub secs: u64,
}

/// Reads the whole body, at most `limit` bytes after decompression.
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let raw = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                BodyError::TooLarge { limit }
            } else if let Some(t) = timed_out(&*e) {
                BodyError::TimedOut { secs: t.secs }
            } else {
                BodyError::Read(e.to_string())
            }
        })?
        .to_bytes();
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(&raw[..]), "gzip", limit),
        "deflate" => {
            // HTTP "deflate" is zlib-wrapped, but some clients send raw deflate.
            if raw.first().is_some_and(|b| b & 0x0f == 8) {
                inflate(flate2::read::ZlibDecoder::new(&raw[..]), "deflate", limit)
            } else {
                inflate(
                    flate2::read::DeflateDecoder::new(&raw[..]),
                    "deflate",
                    limit,
                )
            }
        }
        other => Err(BodyError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Reads and drops a body the server will not use (at most `limit`
/// bytes), so the answer it gets instead reaches a client still sending
/// it rather than a reset connection (the server's lingering does this
/// for every route). Nothing is kept in memory.
pub async fn discard(body: Body, limit: usize) {
    let mut body = body;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > limit {
            return;
        }
    }
}

/// Finds a [`BodyTimedOut`] in an error and its sources.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> Option<BodyTimedOut> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<BodyTimedOut>() {
            return Some(*t);
        }
        next = e.source();
    }
    None
}

/// A request body that fails with [`BodyTimedOut`] once `deadline` has
/// passed, however slowly its bytes trickle in (slow-body attacks).
#[derive(Debug)]
pub struct Deadline<B> {
    inner: B,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    secs: u64,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, timeout: std::time::Duration) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            secs: timeout.as_secs(),
        }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.sleep.as_mut().poll(cx).is_ready() {
            let secs = self.secs;
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut { secs }))));
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn inflate(reader: impl Read, encoding: &str, limit: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Decode {
            encoding: encoding.to_owned(),
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(out.into())
}
