//! Every way an admin request can fail, and the ONE place
//! ([`AdminError::into_response`]) that turns them into HTTP answers:
//! `{"message": ...}`, plus `"errors": [{"field", "message"}]` for invalid
//! input. Client input never yields a 500; only the server's own failures
//! (the config file cannot be written) do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jwtgate_config::ConfigErrors;
use serde_json::{json, Value};
use tracing::warn;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `X-API-KEY` missing or wrong.
    #[error("missing or invalid X-API-KEY")]
    Unauthorized,
    /// A plain-HTTP admin listener reached by a name it does not answer
    /// to (`admin.allowed_hosts`): `421`.
    #[error("{0}")]
    UnknownHost(String),
    /// No `Host` where HTTP/1.1 needs one, two of them, or one that is not
    /// `host[:port]`: `400`, as the data plane answers (RFC 9112 §3.2).
    #[error("invalid Host header: {0}")]
    BadHost(String),
    #[error("{0}")]
    NotFound(String),
    /// The body is not JSON at all.
    #[error("invalid JSON body: {0}")]
    MalformedJson(String),
    /// The body (or the config it would produce) is invalid; every problem,
    /// located relative to the body where it lies inside it.
    #[error("{message}")]
    Invalid {
        message: String,
        errors: ConfigErrors,
    },
    /// A create (`If-None-Match: *`) of an object that exists: `412`, the
    /// name located.
    #[error("{message}")]
    Exists {
        message: String,
        errors: ConfigErrors,
    },
    /// A write conditioned on a version (`If-Match` naming an entity tag)
    /// of an object now at another: `412`, nothing written.
    #[error("{0}")]
    Changed(String),
    /// A protected policy would be deleted or changed (SPEC §3.5).
    #[error("{0}")]
    Protected(String),
    /// The config file holds an edit that was rejected; an API write now
    /// would silently overwrite it.
    #[error("{message}")]
    FileConflict {
        message: String,
        errors: ConfigErrors,
    },
    /// The config source (etcd) cannot take the write now; the message
    /// says whether the change was made (not, or not known).
    #[error("{0}")]
    SourceUnavailable(String),
    #[error("revocation store unavailable: {0}")]
    StoreUnavailable(String),
    /// The change was valid but could not be written to the config file; it
    /// was not applied either, so file and memory still agree.
    #[error("cannot write the config file: {0}")]
    Persist(String),
    /// The request's body could not be taken: it stalled (408), it is too
    /// large (413), or it could not be read (400).
    #[error("{1}")]
    Body(StatusCode, String),
}

impl AdminError {
    pub fn invalid(message: impl Into<String>, errors: ConfigErrors) -> Self {
        AdminError::Invalid {
            message: message.into(),
            errors,
        }
    }

    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        AdminError::invalid("invalid request body", ConfigErrors::single(field, message))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            AdminError::BadHost(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::MalformedJson(_) | AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
            AdminError::Protected(_) | AdminError::FileConflict { .. } => StatusCode::CONFLICT,
            AdminError::Exists { .. } | AdminError::Changed(_) => StatusCode::PRECONDITION_FAILED,
            AdminError::StoreUnavailable(_) | AdminError::SourceUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AdminError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AdminError::Body(status, _) => *status,
        }
    }
}

fn field_errors(errors: &ConfigErrors) -> Value {
    errors
        .0
        .iter()
        .map(|e| json!({ "field": e.location, "message": e.message }))
        .collect()
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            AdminError::MalformedJson(detail) => json!({
                "message": "invalid JSON body",
                "errors": [{ "field": "", "message": detail }],
            }),
            AdminError::Invalid { message, errors }
            | AdminError::Exists { message, errors }
            | AdminError::FileConflict { message, errors } => json!({
                "message": message,
                "errors": field_errors(errors),
            }),
            AdminError::StoreUnavailable(detail) => {
                // The client gets the fixed message of SPEC §3.4; the cause is logged.
                warn!(error = %detail, "admin revocation failed");
                json!({ "message": "revocation store unavailable" })
            }
            AdminError::Persist(detail) => {
                warn!(error = %detail, "admin change not applied: config file not written");
                json!({ "message": self.to_string() })
            }
            other => json!({ "message": other.to_string() }),
        };
        (status, Json(body)).into_response()
    }
}
