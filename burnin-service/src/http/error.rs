//! [`ApiError`]: every error answer of the API, a status with
//! `{"error": "..."}` (or, where the edge's role matters,
//! [`Unavailable`]) and the headers that go with it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use burnin_core::StoreError;

use super::body::{Error, Role, Unavailable};

/// An error answer: its status, its body and its headers.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Body,
    retry_after: Option<u32>,
    challenge: bool,
}

#[derive(Debug)]
enum Body {
    Plain(Error),
    Unavailable(Unavailable),
}

impl ApiError {
    /// `status` with `{"error": message}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Body::Plain(Error {
                error: message.into(),
            }),
            retry_after: None,
            challenge: false,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 for an operation id nobody started.
    pub fn unknown_operation(raw: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no operation {raw:?} is known; start it with POST /scans"),
        )
    }

    /// 500 for a store that failed (logged).
    pub fn store(e: &StoreError) -> Self {
        tracing::error!("{e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Self {
        ApiError {
            challenge: true,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API token; send Authorization: Bearer <the --api-token value>",
            )
        }
    }

    /// 403 for the read-only viewer token on a route that changes
    /// something (starting a scan).
    pub fn viewer_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "this is the read-only viewer token (--viewer-token): it may read and watch, \
             not start or change scans; send Authorization: Bearer <the --api-token value>",
        )
    }

    /// 503 naming this edge's `role` (if it matters) and, on `POST
    /// /scans`, the `active` edge (`Some(None)`: none is recorded).
    pub fn unavailable(
        message: impl Into<String>,
        role: Option<Role>,
        active: Option<Option<String>>,
    ) -> Self {
        ApiError {
            body: Body::Unavailable(Unavailable {
                active,
                error: message.into(),
                role,
            }),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, String::new())
        }
    }

    /// The same, with `Retry-After: seconds`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = match self.body {
            Body::Plain(b) => (self.status, Json(b)).into_response(),
            Body::Unavailable(b) => (self.status, Json(b)).into_response(),
        };
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.challenge {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}
