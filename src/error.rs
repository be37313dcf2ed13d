//! The one error type of pixmirror, and its mapping to HTTP status and SPEC code.
//!
//! Every failure on the request path ends up as an [`Error`]; `status()` and
//! `code()` are the single place where the SPEC section 3 table is encoded;
//! `category()` groups the codes for metrics (`pixmirror_errors_total`).
//! Messages are public: they never carry internal paths, credentials or
//! backtraces (those go to the log through `detail`).

use http::StatusCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad process string, parameter or key (400 InvalidArgument).
    #[error("{0}")]
    InvalidArgument(String),
    /// The store denied access, or a bad signature (403 AccessDenied).
    #[error("{0}")]
    AccessDenied(String),
    /// Not in the bucket and no mirror rule found it (404 NoSuchKey).
    #[error("{0}")]
    NoSuchKey(String),
    /// Source over `process.max_source_bytes` (413 SourceTooLarge).
    #[error("{0}")]
    SourceTooLarge(String),
    /// Not an image, corrupt, or over `process.max_source_pixels` (422).
    #[error("{0}")]
    UnprocessableImage(String),
    /// A mirror origin failed (502 MirrorFailed).
    #[error("{0}")]
    MirrorFailed(String),
    /// The store failed (502 StoreError).
    #[error("{0}")]
    StoreError(String),
    /// Overloaded (503 Busy, with Retry-After).
    #[error("{0}")]
    Busy(String),
    /// An origin or processing took too long (504 Timeout).
    #[error("{0}")]
    Timeout(String),
    /// A method other than GET and HEAD on the image listener (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A bug or an unexpected condition (500 InternalError).
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// The one 404 answer: the key is in neither the bucket nor a mirror origin.
    pub fn no_such_key() -> Self {
        Error::NoSuchKey("the specified key does not exist".into())
    }

    /// A failure of this request's own making (a limit, a parameter, an
    /// undecodable source), not of the store, an origin or the server.
    pub fn caused_by_request(&self) -> bool {
        matches!(
            self,
            Error::InvalidArgument(_) | Error::SourceTooLarge(_) | Error::UnprocessableImage(_)
        )
    }

    /// What kind of failure this is, for metrics and alerts (as imgproxy's
    /// error category): `client` (the request's own fault: 4xx), `upstream`
    /// (the store or a mirror origin failed: 502), `overload` (503 Busy),
    /// `timeout` (504) or `internal` (500, a bug).
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_)
            | Error::AccessDenied(_)
            | Error::NoSuchKey(_)
            | Error::SourceTooLarge(_)
            | Error::UnprocessableImage(_)
            | Error::MethodNotAllowed(_) => "client",
            Error::MirrorFailed(_) | Error::StoreError(_) => "upstream",
            Error::Busy(_) => "overload",
            Error::Timeout(_) => "timeout",
            Error::Internal(_) => "internal",
        }
    }

    pub fn unprocessable(msg: impl Into<String>) -> Self {
        Error::UnprocessableImage(msg.into())
    }

    /// The one answer of a run past `process.timeout` (504).
    pub fn too_slow() -> Self {
        Error::Timeout("processing took too long".into())
    }

    /// [`Error::too_slow`] once `deadline` has passed.
    pub fn check_deadline(deadline: Option<std::time::Instant>) -> Result<()> {
        match deadline {
            Some(d) if std::time::Instant::now() > d => Err(Error::too_slow()),
            _ => Ok(()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Error::AccessDenied(_) => StatusCode::FORBIDDEN,
            Error::NoSuchKey(_) => StatusCode::NOT_FOUND,
            Error::SourceTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnprocessableImage(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::MirrorFailed(_) | Error::StoreError(_) => StatusCode::BAD_GATEWAY,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::AccessDenied(_) => "AccessDenied",
            Error::NoSuchKey(_) => "NoSuchKey",
            Error::SourceTooLarge(_) => "SourceTooLarge",
            Error::UnprocessableImage(_) => "UnprocessableImage",
            Error::MirrorFailed(_) => "MirrorFailed",
            Error::StoreError(_) => "StoreError",
            Error::Busy(_) => "Busy",
            Error::Timeout(_) => "Timeout",
            Error::MethodNotAllowed(_) => "MethodNotAllowed",
            Error::Internal(_) => "InternalError",
        }
    }

    /// The JSON body of an error response: `{"code": "...", "message": "..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "code": self.code(), "message": self.to_string() }).to_string()
    }
}
