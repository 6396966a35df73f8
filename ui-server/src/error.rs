//! The API's errors and the one function that maps them to an HTTP status and a JSON body
//! `{"error": "..."}`. Every message names what failed and where (the parameter, the relay's or
//! the store's address). Nothing here performs I/O.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body the client got wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The SQL console's statement was refused: a write, DDL, or the engine's own error (400).
    #[error("{0}")]
    Sql(String),
    /// Missing or wrong bearer token (401).
    #[error("missing or wrong bearer token (send Authorization: Bearer <token>)")]
    Unauthorized,
    /// No such API route (404).
    #[error("no API route {method} {path}")]
    NotFound { method: String, path: String },
    /// The relay did not answer (502).
    #[error("relay {address} unreachable: {message}")]
    Relay { address: String, message: String },
    /// The store could not be opened or reached (502).
    #[error("store {url} unreachable: {message}")]
    Store { url: String, message: String },
    /// Anything else, with what we were doing (500).
    #[error("{context}: {message}")]
    Internal { context: String, message: String },
}

impl ApiError {
    /// A bad parameter: `parameter NAME: MESSAGE`.
    pub fn param(name: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(format!("parameter {name}: {message}"))
    }

    /// A failure we did not expect, with context.
    pub fn internal(context: impl Into<String>, e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            context: context.into(),
            message: e.to_string(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Sql(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Relay { .. } | ApiError::Store { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The one mapping from an error to a response: its status and `{"error": message}`.
pub fn error_response(e: &ApiError) -> Response {
    let status = e.status();
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), error = %e, "request failed");
    } else {
        tracing::debug!(status = status.as_u16(), error = %e, "request refused");
    }
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}
