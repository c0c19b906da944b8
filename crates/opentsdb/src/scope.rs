//! Who is calling and which database a request addresses: HTTP Basic
//! credentials checked once per request, then per handler the grant for
//! its action on the database named by `?database=` (or the
//! `X-Sundial-Database` header; `default` otherwise).

use super::{Api, OpenTsdbError};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sundial_api::access::{
    Action, BasicError, Identity, basic_credentials, is_public_path, wants_basic_challenge,
};
use sundial_storage::DEFAULT_DATABASE;

/// The header naming the database, for clients that cannot add a query
/// parameter (Grafana's OpenTSDB data source can add headers).
pub(crate) const DATABASE_HEADER: &str = "x-sundial-database";

/// Authenticates every request but the public ones and records the
/// caller's [`Identity`] for the handlers.
pub(crate) async fn authenticate(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let challenge = wants_basic_challenge(req.headers());
    let identity = match api.store.anonymous() {
        Some(open) => open,
        None if is_public_path(req.uri().path()) => Identity::Open,
        None => match basic_credentials(req.headers()) {
            Ok((id, secret)) => match api.store.check_secret(&id, &secret) {
                Some(identity) => identity,
                None => return unauthorized("wrong access key id or secret", challenge),
            },
            Err(e @ (BasicError::Missing | BasicError::Malformed)) => {
                return unauthorized(&e.to_string(), challenge);
            }
        },
    };
    req.extensions_mut().insert(identity);
    next.run(req).await
}

fn unauthorized(details: &str, challenge: bool) -> Response {
    let mut r = OpenTsdbError {
        status: StatusCode::UNAUTHORIZED,
        message: "Authentication required".into(),
        details: Some(details.to_owned()),
    }
    .into_response();
    if challenge {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sundial\""),
        );
    }
    r
}

/// The database a request names.
pub(crate) fn database_name(parts: &Parts) -> Result<String, OpenTsdbError> {
    let from_query = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "database")
        .map(|(_, v)| v.into_owned());
    let from_header = || {
        parts
            .headers
            .get(DATABASE_HEADER)
            .map(|v| v.to_str().map(|s| s.trim().to_owned()))
    };
    let name = match from_query {
        Some(n) => n,
        None => match from_header() {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Err(OpenTsdbError::bad_request(
                    "The X-Sundial-Database header is not readable",
                ));
            }
            None => DEFAULT_DATABASE.to_owned(),
        },
    };
    if name.is_empty() {
        return Ok(DEFAULT_DATABASE.to_owned());
    }
    Ok(name)
}

/// The API re-pointed at the database the request may `action` on.
async fn scoped(parts: &Parts, api: &Api, action: Action) -> Result<Api, OpenTsdbError> {
    let identity = parts
        .extensions
        .get::<Identity>()
        .cloned()
        .or_else(|| api.store.anonymous())
        .ok_or_else(|| OpenTsdbError::internal(&"request reached a handler unauthenticated"))?;
    let name = database_name(parts)?;
    // The grant first, so a key learns nothing of databases it may not use.
    if !identity.may(&name, action) {
        return Err(OpenTsdbError {
            status: StatusCode::FORBIDDEN,
            message: "Access denied".into(),
            details: Some(identity.denial(&name, action)),
        });
    }
    api.for_database(&name).await?.ok_or_else(|| {
        OpenTsdbError::missing(format!("Database {name} does not exist"))
            .with_details("create it through POST /v1/database")
    })
}

macro_rules! scope_extractor {
    ($name:ident, $action:expr, $doc:literal) => {
        #[doc = $doc]
        pub(crate) struct $name(pub(crate) Api);

        impl FromRequestParts<Api> for $name {
            type Rejection = OpenTsdbError;

            async fn from_request_parts(
                parts: &mut Parts,
                api: &Api,
            ) -> Result<Self, Self::Rejection> {
                scoped(parts, api, $action).await.map(Self)
            }
        }
    };
}

scope_extractor!(
    ReadScope,
    Action::Read,
    "The API on the database a request may read."
);
scope_extractor!(
    WriteScope,
    Action::Write,
    "The API on the database a request may write."
);
scope_extractor!(
    AdminScope,
    Action::Admin,
    "The API on the database a request may administer (deletes)."
);
