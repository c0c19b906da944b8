//! Baidu `bce-auth-v1` request signatures (spec section 5): parsing the
//! authorization string, canonicalising the request, and checking the
//! signature and its validity window.

use std::fmt::{self, Write as _};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::percent_decode;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use sundial_api::access::{Action, GrantConfig, Identity, Store};

type HmacSha256 = Hmac<Sha256>;

const AUTH_VERSION: &str = "bce-auth-v1";
/// Tolerated clock skew for timestamps in the future (spec 5.4).
const MAX_FUTURE_SKEW_SECS: i64 = 900;

/// An access key of the older `[baidu] credentials` list; the server
/// adds it to the one key store with read and write on its databases
/// (and administration too for `"*"`, which could always manage databases).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `"*"` or database names.
    pub databases: Vec<String>,
}

impl Credential {
    /// The key as the store takes it: id, secrets, grants.
    pub fn to_key(&self) -> (String, Vec<String>, GrantConfig) {
        let grants = self
            .databases
            .iter()
            .map(|db| {
                let mut actions = vec![Action::Read, Action::Write];
                if db == "*" {
                    actions.push(Action::Admin);
                }
                (db.clone(), actions)
            })
            .collect();
        (
            self.access_key_id.clone(),
            vec![self.secret_access_key.clone()],
            grants,
        )
    }
}

// Hand-written so the secret never reaches logs.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("databases", &self.databases)
            .finish()
    }
}

/// The parts of an HTTP request the signature covers.
#[derive(Debug)]
pub(crate) struct SignedRequest<'a> {
    /// e.g. `"GET"`.
    pub(crate) method: &'a str,
    /// Raw path as received (may be percent-encoded).
    pub(crate) path: &'a str,
    /// Raw query string as received, without `?`.
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AuthError {
    #[error("no authorization supplied")]
    Missing,
    #[error("invalid authorization string: {0}")]
    Malformed(String),
    /// Also for an unknown access key id: both look the same, so keys
    /// cannot be probed for.
    #[error("the request signature does not match")]
    SignatureMismatch,
    #[error("the request signature has expired or is not yet valid")]
    Expired,
    #[error(
        "the signature's validity period of {claimed} s is over the server's maximum of {max} s"
    )]
    TooLong { claimed: i64, max: u64 },
}

impl AuthError {
    /// The BCE error code (spec 4.2).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Missing => "AccessDenied",
            Self::Malformed(_) => "InvalidHTTPAuthHeader",
            Self::SignatureMismatch => "SignatureDoesNotMatch",
            Self::Expired | Self::TooLong { .. } => "RequestExpired",
        }
    }

    /// The HTTP status that goes with [`Self::code`].
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Missing => 403,
            Self::Malformed(_) | Self::SignatureMismatch | Self::Expired | Self::TooLong { .. } => {
                400
            }
        }
    }
}

/// A parsed `bce-auth-v1/...` string (spec 5.1).
#[derive(Debug)]
struct AuthString<'a> {
    access_key_id: &'a str,
    /// Kept as received: the signing key covers the exact text.
    timestamp: &'a str,
    timestamp_secs: i64,
    expiration: &'a str,
    expiration_secs: i64,
    signed_headers: Vec<&'a str>,
    /// Lowercased, 64 hex digits.
    signature: String,
}

impl AuthString<'_> {
    fn prefix(&self) -> String {
        format!(
            "{AUTH_VERSION}/{}/{}/{}",
            self.access_key_id, self.timestamp, self.expiration
        )
    }
}

fn malformed(reason: &str) -> AuthError {
    AuthError::Malformed(reason.to_owned())
}

fn parse_auth_string(s: &str) -> Result<AuthString<'_>, AuthError> {
    let parts: Vec<&str> = s.trim().split('/').collect();
    let &[version, access_key_id, timestamp, expiration, signed, sig] = parts.as_slice() else {
        return Err(malformed("expected six '/'-separated parts"));
    };
    if version != AUTH_VERSION {
        return Err(malformed("unsupported authorization version"));
    }
    if access_key_id.is_empty() {
        return Err(malformed("empty access key id"));
    }
    let timestamp_secs = parse_timestamp(timestamp)
        .ok_or_else(|| malformed("timestamp is not YYYY-MM-DDTHH:MM:SSZ"))?;
    // Digits only: `str::parse` would also accept a leading '+'.
    let expiration_secs = Some(expiration)
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|e| e.parse::<i64>().ok())
        .filter(|&e| e > 0)
        .ok_or_else(|| malformed("expiration is not a positive integer"))?;
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("signature is not 64 hex digits"));
    }
    let signed_headers = signed.split(';').filter(|h| !h.is_empty()).collect();
    Ok(AuthString {
        access_key_id,
        timestamp,
        timestamp_secs,
        expiration,
        expiration_secs,
        signed_headers,
        signature: sig.to_ascii_lowercase(),
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) to Unix seconds; `None` unless exactly that
/// shape with in-range fields.
fn parse_timestamp(s: &str) -> Option<i64> {
    const SHAPE: &[u8; 20] = b"0000-00-00T00:00:00Z";
    let shape_ok = s.len() == SHAPE.len()
        && s.bytes().zip(SHAPE).all(|(b, &want)| match want {
            b'0' => b.is_ascii_digit(),
            _ => b == want,
        });
    if !shape_ok {
        return None;
    }
    let field = |range: std::ops::Range<usize>| s.get(range)?.parse::<u32>().ok();
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let narrow = |v: u32| i8::try_from(v).ok();
    let time = jiff::civil::DateTime::new(
        i16::try_from(year).ok()?,
        narrow(month)?,
        narrow(day)?,
        narrow(hour)?,
        narrow(minute)?,
        narrow(second)?,
        0,
    )
    .ok()?;
    let utc = time.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(utc.timestamp().as_second())
}

/// Spec 5.2: keeps `A-Z a-z 0-9 - . _ ~` (and `/` when asked), everything
/// else becomes `%XY` with uppercase hex.
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    encode_bytes(s.as_bytes(), keep_slash)
}

// Works on bytes so percent-decoded input that is not UTF-8 round-trips
// unchanged instead of being mangled by a lossy conversion.
fn encode_bytes(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes one query-string component; `+` means space (spec 5.3 step 3).
fn decode_query_component(s: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus_as_space).collect()
}

/// Decoded `(name, value)` pairs of a raw query string.
fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|piece| {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        (decode_query_component(name), decode_query_component(value))
    })
}

fn is_authorization_param(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"authorization")
}

fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<String> = query_pairs(query.unwrap_or(""))
        .filter(|(name, _)| !is_authorization_param(name))
        .map(|(name, value)| {
            format!(
                "{}={}",
                encode_bytes(&name, false),
                encode_bytes(&value, false)
            )
        })
        .collect();
    pairs.sort_unstable();
    pairs.join("&")
}

/// All values of one header joined with `,` and trimmed; `None` if absent or
/// empty.
fn header_value(headers: &HeaderMap, lowercase_name: &str) -> Option<Vec<u8>> {
    let mut joined = Vec::new();
    for (i, value) in headers.get_all(lowercase_name).iter().enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(value.as_bytes());
    }
    let trimmed = joined.trim_ascii();
    (!trimmed.is_empty()).then(|| trimmed.to_vec())
}

fn is_default_signed_header(lowercase_name: &str) -> bool {
    matches!(
        lowercase_name,
        "host" | "content-length" | "content-type" | "content-md5"
    ) || lowercase_name.starts_with("x-bce-")
}

fn canonical_headers(headers: &HeaderMap, signed_headers: &[&str]) -> String {
    let names: Vec<String> = if signed_headers.is_empty() {
        // HeaderMap keys are already lowercase.
        headers
            .keys()
            .map(http::HeaderName::as_str)
            .filter(|k| is_default_signed_header(k))
            .map(str::to_owned)
            .collect()
    } else {
        signed_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect()
    };
    let mut lines: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let value = header_value(headers, name)?;
            Some(format!(
                "{}:{}",
                uri_encode(name, false),
                encode_bytes(&value, false)
            ))
        })
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// Spec 5.3 steps 2–5. An empty `signed_headers` selects the default set.
pub(crate) fn canonical_request(req: &SignedRequest<'_>, signed_headers: &[&str]) -> String {
    let path: Vec<u8> = percent_decode(req.path.as_bytes()).collect();
    format!(
        "{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        encode_bytes(&path, true),
        canonical_query(req.query),
        canonical_headers(req.headers, signed_headers)
    )
}

fn hmac_sha256_hex(key: &[u8], message: &str) -> String {
    // HMAC accepts keys of any length, so this never fails; an empty string
    // could never match a 64-digit signature anyway.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Spec 5.3 step 6: lowercase hex of HMAC-SHA256(secret, auth prefix).
pub(crate) fn signing_key(secret: &str, auth_prefix: &str) -> String {
    hmac_sha256_hex(secret.as_bytes(), auth_prefix)
}

/// Spec 5.3 step 7: the hex signing key is used as ASCII key bytes.
pub(crate) fn sign(signing_key_hex: &str, canonical_request: &str) -> String {
    hmac_sha256_hex(signing_key_hex.as_bytes(), canonical_request)
}

/// The `bce-auth-v1` authorization string signing `method`, `path`,
/// `query` and the `host` header, as the BCE SDKs compute it: for
/// clients (the CLI, tests) that talk to a server with access keys.
/// `timestamp` is `YYYY-MM-DDTHH:MM:SSZ`.
#[allow(clippy::too_many_arguments)]
pub fn authorization(
    method: &str,
    path: &str,
    query: Option<&str>,
    host: &str,
    access_key_id: &str,
    secret: &str,
    timestamp: &str,
    expiration_secs: u64,
) -> String {
    let mut headers = HeaderMap::new();
    if let Ok(h) = http::HeaderValue::from_str(host) {
        headers.insert(http::header::HOST, h);
    }
    let req = SignedRequest {
        method,
        path,
        query,
        headers: &headers,
    };
    let prefix = format!("{AUTH_VERSION}/{access_key_id}/{timestamp}/{expiration_secs}");
    let signature = sign(
        &signing_key(secret, &prefix),
        &canonical_request(&req, &["host"]),
    );
    format!("{prefix}/host/{signature}")
}

/// The authorization string: the header wins over the presigned-URL query
/// parameter (spec 5.1).
fn find_authorization(req: &SignedRequest<'_>) -> Result<String, AuthError> {
    if let Some(value) = req.headers.get(http::header::AUTHORIZATION) {
        return value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| malformed("authorization header is not visible ASCII"));
    }
    query_pairs(req.query.unwrap_or(""))
        .find(|(name, _)| is_authorization_param(name))
        .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())
        .ok_or(AuthError::Missing)
}

/// Verifies the request's signature; `now_secs` is the injected clock (Unix
/// seconds). Returns the caller (the handler checks its grant).
pub(crate) fn verify(
    req: &SignedRequest<'_>,
    store: &Store,
    now_secs: i64,
) -> Result<Identity, AuthError> {
    let raw = find_authorization(req)?;
    let auth = parse_auth_string(&raw)?;
    if u64::try_from(auth.expiration_secs).map_or(true, |e| e > store.max_signature_secs) {
        return Err(AuthError::TooLong {
            claimed: auth.expiration_secs,
            max: store.max_signature_secs,
        });
    }
    let principal = store.key(auth.access_key_id);
    // An unknown key is checked against a stand-in secret: the same work
    // and the same answer as a wrong signature.
    let stand_in = [String::new()];
    let secrets = principal.as_ref().map_or(&stand_in[..], |p| p.secrets());
    let canonical = canonical_request(req, &auth.signed_headers);
    let matched = secrets.iter().fold(false, |ok, secret| {
        let expected = sign(&signing_key(secret, &auth.prefix()), &canonical);
        ok | bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes()))
    });
    let principal = match (principal, matched) {
        (Some(p), true) => p,
        (None, _) => {
            tracing::debug!(access_key_id = auth.access_key_id, "unknown access key id");
            return Err(AuthError::SignatureMismatch);
        }
        (Some(_), false) => return Err(AuthError::SignatureMismatch),
    };

    // Saturating: a huge expiration must not wrap into the past.
    let expires_at = auth.timestamp_secs.saturating_add(auth.expiration_secs);
    if now_secs > expires_at || auth.timestamp_secs > now_secs.saturating_add(MAX_FUTURE_SKEW_SECS)
    {
        return Err(AuthError::Expired);
    }
    Ok(Identity::Key(principal))
}

#[cfg(test)]
mod tests;
