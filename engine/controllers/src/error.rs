//! The controllers' one error type, classified once: the reconcilers act on [`Error::class`],
//! never on messages.

use std::time::Duration;

/// What a reconciler should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Data another controller or a person must provide first (a Composition, a revision, a CRD
    /// that is not served yet): retry soon, without growing backoff.
    Waiting,
    /// A transient API failure (conflict, timeout, server error): retry with backoff.
    Transient,
    /// A mistake in the user's objects: nothing changes until they do.
    Terminal,
}

/// Errors from the controllers. Every variant says what was being done and to which object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {object}: {source}")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
    #[error("{object}: waiting: {message}")]
    Waiting { object: String, message: String },
    #[error("cannot serialize {object}: {source}")]
    Serialize {
        object: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("metrics server on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("function endpoints: {0}")]
    Functions(#[from] strata_functions::transport::CallError),
    #[error("{controller} controller stopped: {message}")]
    Stopped {
        controller: &'static str,
        message: String,
    },
}

impl Error {
    pub(crate) fn kube(
        action: &'static str,
        object: impl Into<String>,
        source: kube::Error,
    ) -> Self {
        Error::Kube {
            action,
            object: object.into(),
            source,
        }
    }

    pub(crate) fn invalid(object: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            object: object.into(),
            message: message.into(),
        }
    }

    pub(crate) fn waiting(object: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Waiting {
            object: object.into(),
            message: message.into(),
        }
    }

    /// Classifies the error once; reconcilers match on the class.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status)
                    if matches!(status.code, 400 | 403 | 404 | 405 | 415 | 422) =>
                {
                    ErrorClass::Terminal
                }
                _ => ErrorClass::Transient,
            },
            Error::Invalid { .. } | Error::Serialize { .. } => ErrorClass::Terminal,
            Error::Waiting { .. } => ErrorClass::Waiting,
            Error::Metrics { .. } | Error::Stopped { .. } => ErrorClass::Transient,
            Error::Functions(_) => ErrorClass::Terminal,
        }
    }

    /// True when the API refused a write as stale (409): another writer came first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source, .. } if is_conflict(source))
    }

    /// How long to wait before retrying, given the class. A conflict is retried at once on
    /// the newer version: it is a race, not a fault.
    pub fn retry_after(&self, resync: Duration) -> Duration {
        if self.is_conflict() {
            return Duration::from_millis(200);
        }
        match self.class() {
            ErrorClass::Waiting => Duration::from_secs(5),
            ErrorClass::Transient => Duration::from_secs(5),
            ErrorClass::Terminal => resync,
        }
    }
}

/// True when a kube error is the API's 404.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// True when a kube error is the API's 409 (already exists or a stale write).
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
