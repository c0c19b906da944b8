//! Request bodies: size limits and `Content-Encoding` handling shared by
//! every HTTP API.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
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
    #[error("reading the request body failed: {0}")]
    Read(String),
}

/// Reads the whole body, at most `limit` bytes after decompression.
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let raw = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                BodyError::TooLarge { limit }
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
