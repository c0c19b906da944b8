//! Fuzz entry points of the Baidu `/v1` adapter (run by `fuzz/`, replayed
//! by `cargo test` through the test below). None may panic.

use super::auth::{self, AuthError, Credential, SignedRequest};
use super::config::Config;
use super::{query, write};
use http::{HeaderMap, HeaderName, HeaderValue};
use sundial_api::access::Store;

/// The clock of every target: 2016-06-08T17:00:00Z, the spec's
/// authentication vectors' (TV-A1..A7).
const NOW_SECS: i64 = 1_465_405_200;
/// The spec's test credential (section 16.7).
const AK: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SK: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// `POST /v1/datapoint`: the JSON body, with the default limits.
pub fn write(data: &[u8]) {
    let config = Config::default();
    let limits = write::WriteLimits {
        max_points: config.max_points_per_write,
        max_string_chars: config.max_string_chars,
        max_bytes: config.max_bytes_value,
    };
    let _ = write::parse(data, limits, NOW_SECS * 1000);
}

/// `PUT /v1/datapoint?query`: the JSON query, at `+08:00`.
pub fn query(data: &[u8]) {
    let ctx = query::Context {
        now: NOW_SECS * 1000,
        utc_offset_ms: 8 * 3_600_000,
    };
    let _ = query::parse(data, ctx);
}

/// `bce-auth-v1` verification of a request written as HTTP text: the
/// request line (`METHOD /path?query`), then `Name: value` header lines
/// (ones `http` refuses are skipped) up to a blank line. When the
/// authorization names the test key, it is also signed correctly and
/// verified again: that must never be a signature mismatch.
pub fn auth(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.split(' ');
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut headers = HeaderMap::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let key = Credential {
        access_key_id: AK.into(),
        secret_access_key: SK.into(),
        databases: vec!["*".into()],
    };
    let Ok(credentials) = Store::new(&sundial_api::access::Config::default(), [key.to_key()])
    else {
        return;
    };
    let req = SignedRequest {
        method,
        path,
        query,
        headers: &headers,
    };
    let _ = auth::verify(&req, &credentials, NOW_SECS);
    resign_and_verify(&req, &credentials);
}

/// Replaces the signature of a six-part authorization for the test key
/// by the right one and checks it is accepted as a signature.
fn resign_and_verify(req: &SignedRequest<'_>, credentials: &Store) {
    let in_header = req.headers.get(http::header::AUTHORIZATION);
    let raw = match in_header {
        Some(v) => match v.to_str() {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        },
        None => {
            let found = req.query.unwrap_or_default().split('&').find_map(|p| {
                let (name, value) = p.split_once('=').unwrap_or((p, ""));
                let name = percent_encoding::percent_decode_str(name)
                    .decode_utf8()
                    .ok()?;
                name.eq_ignore_ascii_case("authorization").then(|| {
                    let plus = value.replace('+', " ");
                    String::from_utf8_lossy(
                        &percent_encoding::percent_decode_str(&plus).collect::<Vec<u8>>(),
                    )
                    .into_owned()
                })
            });
            match found {
                Some(s) => s,
                None => return,
            }
        }
    };
    let parts: Vec<&str> = raw.trim().split('/').collect();
    let &[version, key, timestamp, expiration, signed, _] = parts.as_slice() else {
        return;
    };
    let signed: Vec<&str> = signed.split(';').filter(|h| !h.is_empty()).collect();
    if key != AK
        || signed
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization"))
    {
        return;
    }
    let prefix = format!("{version}/{key}/{timestamp}/{expiration}");
    let signature = auth::sign(
        &auth::signing_key(SK, &prefix),
        &auth::canonical_request(req, &signed),
    );
    let fixed = format!("{prefix}/{}/{signature}", signed.join(";"));
    let mut headers = req.headers.clone();
    let query = if in_header.is_some() {
        let Ok(value) = HeaderValue::from_str(&fixed) else {
            return;
        };
        headers.insert(http::header::AUTHORIZATION, value);
        req.query.map(str::to_owned)
    } else {
        // Every authorization parameter is left out of the canonical
        // query: the signed one goes first.
        Some(format!(
            "authorization={}&{}",
            auth::uri_encode(&fixed, false),
            req.query.unwrap_or_default()
        ))
    };
    let again = SignedRequest {
        method: req.method,
        path: req.path,
        query: query.as_deref(),
        headers: &headers,
    };
    let result = auth::verify(&again, credentials, NOW_SECS);
    assert!(
        result.as_ref().err() != Some(&AuthError::SignatureMismatch),
        "a correctly signed request was refused: {fixed}"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn corpus_and_regressions_replay() {
        sundial_codec::fuzz::replay("baidu_write", super::write);
        sundial_codec::fuzz::replay("baidu_query", super::query);
        sundial_codec::fuzz::replay("baidu_auth", super::auth);
    }
}
