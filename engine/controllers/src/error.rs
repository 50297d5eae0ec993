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
    /// A Kubernetes API call failed; 400, 403, 404, 405, 415 and 422 are terminal, anything
    /// else transient.
    #[error("{action} {object}: {source}")]
    Kube {
        /// What was being done, e.g. `applying`.
        action: &'static str,
        /// The object it was done to, e.g. `ConfigMap default/app`.
        object: String,
        /// The client's error, the API server's status included.
        #[source]
        source: kube::Error,
    },
    /// A user's object (or the controllers' own configuration) is wrong: terminal.
    #[error("{object}: {message}")]
    Invalid {
        /// The object, e.g. `Composition app`.
        object: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// Something another controller or a person must provide first is not there yet.
    #[error("{object}: waiting: {message}")]
    Waiting {
        /// The object that waits.
        object: String,
        /// What it waits for.
        message: String,
    },
    /// An object could not be turned into JSON: terminal.
    #[error("cannot serialize {object}: {source}")]
    Serialize {
        /// The object.
        object: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The metrics server could not bind its address or stopped serving.
    #[error("metrics server on {addr}: {source}")]
    Metrics {
        /// The address from [`Settings::metrics_addr`](crate::Settings::metrics_addr).
        addr: std::net::SocketAddr,
        /// The listener's or server's error.
        #[source]
        source: std::io::Error,
    },
    /// The controllers' identity may not write a composed kind: nothing of the pass is applied.
    /// Worded as kube-apiserver's 403, then how to grant it.
    #[error(
        "resource `{template}` ({object}): {qualified} {name:?} is forbidden: User {user:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}; grant it with a ClusterRole labelled {label}: \"true\" (Crossplane's {crossplane_label}: \"true\" works too)",
        qualified = .denial.access.qualified(),
        name = .denial.name,
        user = .denial.user,
        verb = .denial.access.verb,
        resource = .denial.access.resource,
        group = .denial.access.group,
        scope = .denial.access.scope(),
        label = crate::roles::AGGREGATE_TO_CONTROLLERS,
        crossplane_label = crate::roles::CROSSPLANE_AGGREGATE_TO_CROSSPLANE,
    )]
    Forbidden {
        /// The composed resource's name in the Composition.
        template: String,
        /// The XR being composed.
        object: String,
        /// The missing permission and who lacks it.
        denial: Box<crate::shared::Denial>,
    },
    /// The function endpoints in [`Settings::functions`](crate::Settings::functions) cannot be
    /// set up (an endpoint whose address is invalid): terminal.
    #[error("function endpoints: {0}")]
    Functions(#[from] strata_functions::transport::CallError),
    /// Leader election failed or the Lease was lost.
    #[error(transparent)]
    Leader(#[from] strata_leader::Error),
    /// A controller or cache ended on its own, which only shutdown should make it do.
    #[error("{controller} controller stopped: {message}")]
    Stopped {
        /// Which one, e.g. `cache`.
        controller: &'static str,
        /// Why it stopped.
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
            Error::Metrics { .. } | Error::Stopped { .. } | Error::Leader(_) => {
                ErrorClass::Transient
            }
            Error::Functions(_) | Error::Forbidden { .. } => ErrorClass::Terminal,
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
        if let Error::Forbidden { .. } = self {
            // A person grants it with a ClusterRole; nothing notifies the XR of that.
            return Duration::from_secs(5);
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

/// The controllers' result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forbidden_composed_kind_names_the_resource_verb_kind_and_the_label_and_retries_soon() {
        let e = Error::Forbidden {
            template: "server".into(),
            object: "Deployment team/shop-server".into(),
            denial: Box::new(crate::shared::Denial {
                access: crate::shared::Access {
                    verb: "patch",
                    group: "apps".into(),
                    resource: "deployments".into(),
                    namespace: "team".into(),
                },
                name: "shop-server".into(),
                user: "system:strata:controllers".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "resource `server` (Deployment team/shop-server): deployments.apps \"shop-server\" \
             is forbidden: User \"system:strata:controllers\" cannot patch resource \"deployments\" in API group \"apps\" in \
             the namespace \"team\"; grant it with a ClusterRole labelled \
             rbac.strata.dev/aggregate-to-controllers: \"true\" (Crossplane's \
             rbac.crossplane.io/aggregate-to-crossplane: \"true\" works too)"
        );
        assert_eq!(e.class(), ErrorClass::Terminal);
        assert_eq!(
            e.retry_after(Duration::from_secs(3600)),
            Duration::from_secs(5),
            "a grant is a person's act that nothing notifies the XR of"
        );
    }
}
