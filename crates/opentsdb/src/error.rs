//! OpenTSDB's request-error body: `{"error":{"code","message","details"}}`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sundial_storage::ErrorClass;
use tracing::error;

/// A request-level failure, rendered in OpenTSDB's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTsdbError {
    pub status: StatusCode,
    pub message: String,
    pub details: Option<String>,
}

impl OpenTsdbError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: "Endpoint not found".into(),
            details: None,
        }
    }

    /// 404 for a missing resource (an unknown UID or TSUID).
    pub fn missing(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            details: None,
        }
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "Method not allowed".into(),
            details: Some(format!(
                "The HTTP method [{method}] is not permitted for this endpoint"
            )),
        }
    }

    pub fn not_implemented(details: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_IMPLEMENTED,
            message: "Not implemented".into(),
            details: Some(details.into()),
        }
    }

    /// Logs `e` and answers 500 without echoing it.
    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        error!(error = %e, api = "opentsdb", "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Internal server error".into(),
            details: None,
        }
    }

    pub fn unparseable_json(reason: impl Into<String>) -> Self {
        Self::bad_request("Unable to parse the given JSON").with_details(reason)
    }

    /// The one mapping of an error's class to OpenTSDB's status and body;
    /// internal failures are logged, never echoed.
    pub fn classified(class: ErrorClass, e: &dyn std::fmt::Display) -> Self {
        match class {
            ErrorClass::Busy => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "Please throttle writes".into(),
                details: Some(e.to_string()),
            },
            ErrorClass::InvalidInput | ErrorClass::Conflict | ErrorClass::Quota => {
                Self::bad_request(e.to_string())
            }
            ErrorClass::NotFound => Self::missing(e.to_string()),
            ErrorClass::Timeout => Self::bad_request("Query timed out").with_details(format!(
                "{e}; narrow the time range or the series (limits.query_timeout_secs)"
            )),
            ErrorClass::Internal => Self::internal(e),
        }
    }
}

impl From<sundial_storage::Error> for OpenTsdbError {
    fn from(e: sundial_storage::Error) -> Self {
        Self::classified(e.class(), &e)
    }
}

impl From<sundial_api::limits::Busy> for OpenTsdbError {
    fn from(e: sundial_api::limits::Busy) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "Please throttle writes".into(),
            details: Some(e.to_string()),
        }
    }
}

impl From<sundial_api::body::BodyError> for OpenTsdbError {
    fn from(e: sundial_api::body::BodyError) -> Self {
        use sundial_api::body::BodyError;
        match e {
            BodyError::TooLarge { .. } => Self {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "Request body too large".into(),
                details: None,
            },
            BodyError::Decode { .. } | BodyError::UnsupportedEncoding(_) => {
                Self::unparseable_json(e.to_string())
            }
            BodyError::TimedOut { .. } => Self {
                status: StatusCode::REQUEST_TIMEOUT,
                message: "Request body timed out".into(),
                details: Some(e.to_string()),
            },
            BodyError::Read(_) => {
                Self::bad_request("Unable to read the request body").with_details(e.to_string())
            }
        }
    }
}

/// A JSON body with OpenTSDB's content type.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    json_bytes_response(status, body.to_string().into_bytes())
}

/// A JSON body already printed.
pub(crate) fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

impl IntoResponse for OpenTsdbError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.status.as_u16(), "message": self.message});
        if let (Some(d), Some(obj)) = (self.details, err.as_object_mut()) {
            obj.insert("details".into(), d.into());
        }
        let mut response = json_response(self.status, &json!({ "error": err }));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // The retry hint for back-pressure: flushes catch up in seconds.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
