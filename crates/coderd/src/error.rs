//! `ApiError`: every handler's error, turned into a status and a `{message, detail,
//! validations}` body. Internal errors hide their cause from the client; the
//! `log_internal_errors` middleware logs the cause once, with the request id.

use std::error::Error as StdError;
use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sdk::ValidationError;

/// A failed API request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: sdk::Response,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: sdk::Response::message(message),
            source: None,
        }
    }

    /// Adds detail to the message.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.body.detail = detail.into();
        self
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 listing invalid fields.
    pub fn validation(validations: Vec<ValidationError>) -> Self {
        let mut error = Self::bad_request("Validation failed.");
        error.body.validations = validations;
        error
    }

    /// 401 with a message.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: the caller may see the resource but not do this to it.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden.")
    }

    /// 404: the resource does not exist, or the caller may not know that it does.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Resource not found or you do not have access to this resource",
        )
    }

    /// 409 with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 500 hiding `source` from the client.
    pub fn internal(source: impl StdError + Send + Sync + 'static) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: sdk::Response::message("An internal error occurred."),
            source: Some(Arc::new(source)),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message and detail, for a human (internal causes stay hidden).
    pub fn user_text(&self) -> String {
        if self.body.detail.is_empty() {
            self.body.message.clone()
        } else {
            format!("{} {}", self.body.message, self.body.detail)
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(err: store::Error) -> Self {
        ApiError::internal(err)
    }
}

/// The hidden cause of a 5xx response, carried to `log_internal_errors`.
#[derive(Clone)]
struct InternalCause(Arc<dyn StdError + Send + Sync>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(source) = self.source {
            response.extensions_mut().insert(InternalCause(source));
        }
        response
    }
}

/// Logs each internal error once, with its whole cause chain and the request id, and tells the
/// client only the request id to quote.
pub(crate) async fn log_internal_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(sdk::REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>().cloned() else {
        return response;
    };
    let mut chain = cause.to_string();
    let mut source = cause.source();
    while let Some(err) = source {
        let _ = write!(chain, ": {err}");
        source = err.source();
    }
    tracing::error!(%request_id, %method, %path, error = %chain, "internal error");
    let body = sdk::Response {
        message: "An internal error occurred.".to_owned(),
        detail: format!("Quote request id {request_id} to your administrator."),
        validations: Vec::new(),
    };
    (response.status(), Json(body)).into_response()
}
