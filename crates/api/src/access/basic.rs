//! HTTP Basic credentials (`Authorization: Basic base64(id:secret)`): what
//! Grafana's OpenTSDB data source, collectd's `write_http` and tcollector
//! send.

use axum::http::{HeaderMap, header};
use base64::Engine as _;

/// Why an `Authorization` header is not usable Basic credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasicError {
    #[error("no credentials: send HTTP Basic authentication (access key id : secret)")]
    Missing,
    #[error("the Authorization header is not HTTP Basic credentials")]
    Malformed,
}

/// The access key id and secret of a Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Result<(String, String), BasicError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(BasicError::Missing)?
        .to_str()
        .map_err(|_| BasicError::Malformed)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or(BasicError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicError::Malformed);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| BasicError::Malformed)?;
    let text = String::from_utf8(decoded).map_err(|_| BasicError::Malformed)?;
    let (id, secret) = text.split_once(':').ok_or(BasicError::Malformed)?;
    Ok((id.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn parses_what_clients_send() {
        // "grafana:s3cr:et" (a secret may hold colons).
        let h = with("Basic Z3JhZmFuYTpzM2NyOmV0");
        assert_eq!(
            basic_credentials(&h),
            Ok(("grafana".into(), "s3cr:et".into()))
        );
        assert_eq!(
            basic_credentials(&with("basic Z3JhZmFuYTpzM2NyOmV0")),
            basic_credentials(&h)
        );
        assert_eq!(
            basic_credentials(&HeaderMap::new()),
            Err(BasicError::Missing)
        );
        for bad in ["Bearer abc", "Basic", "Basic !!!", "Basic bm9jb2xvbg=="] {
            assert_eq!(
                basic_credentials(&with(bad)),
                Err(BasicError::Malformed),
                "{bad}"
            );
        }
    }
}
