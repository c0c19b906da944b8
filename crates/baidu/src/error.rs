//! Baidu's error body `{requestId, code, message}` (spec 4). Handlers return
//! [`BaiduError`]; the envelope middleware adds the request id, which the
//! body must repeat.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sundial_api::body::BodyError;
use sundial_storage::ErrorClass;
use tracing::error;

/// A failed request: status, BCE code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaiduError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// Carried in the response extensions to the envelope middleware.
#[derive(Debug, Clone)]
pub(crate) struct ErrorBody {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl BaiduError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    pub(crate) fn missing(what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ParameterMissing",
            format!("{what} is required"),
        )
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedJSON", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
    }

    pub(crate) fn method_not_supported(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotSupported",
            format!("method {method} is not supported on this resource"),
        )
    }

    pub(crate) fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    /// Logs `e` and answers 500 without echoing it.
    pub(crate) fn internal(e: &dyn std::fmt::Display) -> Self {
        error!(error = %e, api = "baidu", "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "internal error; see the server log",
        )
    }

    /// The one mapping of an error's class to Baidu's status and code
    /// (spec 4); internal failures are logged, never echoed.
    pub(crate) fn classified(class: ErrorClass, e: &dyn std::fmt::Display) -> Self {
        match class {
            ErrorClass::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("{e}; retry later"),
            ),
            ErrorClass::InvalidInput => Self::invalid(e.to_string()),
            ErrorClass::NotFound => Self::not_found(e.to_string()),
            ErrorClass::Conflict => Self::invalid(e.to_string()),
            ErrorClass::Quota => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "InsufficientQuota",
                e.to_string(),
            ),
            // Spec 9.12: a timeout is an InternalError that says so.
            ErrorClass::Timeout => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            ),
            ErrorClass::Internal => Self::internal(e),
        }
    }

    pub(crate) fn storage(e: &sundial_storage::Error) -> Self {
        Self::classified(e.class(), e)
    }
}

impl From<sundial_api::limits::Busy> for BaiduError {
    fn from(e: sundial_api::limits::Busy) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            e.to_string(),
        )
    }
}

impl From<BodyError> for BaiduError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Read(_) => return Self::internal(&e),
            BodyError::TimedOut { .. } => {
                return Self::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", e.to_string());
            }
            _ => {}
        }
        Self::new(StatusCode::BAD_REQUEST, "InvalidHTTPRequest", e.to_string())
    }
}

impl From<sundial_query::Error> for BaiduError {
    fn from(e: sundial_query::Error) -> Self {
        Self::classified(e.class(), &e)
    }
}

impl IntoResponse for BaiduError {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        resp.extensions_mut().insert(ErrorBody {
            code: self.code,
            message: self.message,
        });
        resp
    }
}
