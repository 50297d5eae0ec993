//! Kubernetes RBAC authorization of the embedded control plane.
//!
//! Every request, once authenticated, is decided here before it is routed: impersonation headers
//! first (each identity asked for needs the `impersonate` verb, then the request runs as that
//! identity), then the request's [attributes](Attributes) against the rules the user's bindings
//! grant ([`index`]). Default deny; `system:masters` is always allowed. A denial is a 403
//! `Status` worded as kube-apiserver words it.
//!
//! Data enters from the cluster: [`Rbac::apply`] is called under the cluster's state lock for
//! every committed write of a Role, ClusterRole, RoleBinding or ClusterRoleBinding, so a binding
//! is in force for the next request after its write. RBAC writes are checked by
//! [`escalation`] (no granting of more than one holds without `escalate`/`bind`), the default
//! roles come from [`bootstrap`], aggregated ClusterRoles are written back by [`aggregation`],
//! and the access reviews (`kubectl auth can-i`) are answered by [`review`].

pub mod aggregation;
pub mod attributes;
pub mod bootstrap;
pub mod escalation;
pub mod impersonation;
pub mod index;
pub mod policy;
pub mod review;

use std::sync::{RwLock, RwLockReadGuard};

use axum::http::HeaderMap;
use serde_json::Value;

pub use attributes::{Attributes, ResourceAttributes, request_attributes};
pub use index::{Decision, Index};
pub use policy::PolicyRule;

use crate::auth::UserInfo;
use crate::error::{ApiError, ErrorTarget};
use crate::resource::GroupResource;

/// The API group of Roles, ClusterRoles and their bindings.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The API group of the access reviews.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

/// The four RBAC kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Rules in one namespace.
    Role,
    /// Rules for cluster-scoped resources, non-resource URLs, or every namespace when bound so.
    ClusterRole,
    /// Grants a Role or ClusterRole to subjects in one namespace.
    RoleBinding,
    /// Grants a ClusterRole to subjects cluster-wide.
    ClusterRoleBinding,
}

impl Kind {
    /// Every RBAC kind.
    pub const ALL: [Kind; 4] = [
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
    ];

    /// The RBAC kind stored under `gr`, if any.
    pub fn of(gr: &GroupResource) -> Option<Kind> {
        if gr.group != RBAC_GROUP {
            return None;
        }
        Kind::ALL.into_iter().find(|k| k.resource() == gr.resource)
    }

    /// The plural resource name, as in paths and rules.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Role => "roles",
            Kind::ClusterRole => "clusterroles",
            Kind::RoleBinding => "rolebindings",
            Kind::ClusterRoleBinding => "clusterrolebindings",
        }
    }

    /// The `kind` field of objects of this kind.
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Role => "Role",
            Kind::ClusterRole => "ClusterRole",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        matches!(self, Kind::Role | Kind::RoleBinding)
    }

    /// Whether this kind binds a role to subjects (rather than holding rules).
    pub fn is_binding(self) -> bool {
        matches!(self, Kind::RoleBinding | Kind::ClusterRoleBinding)
    }
}

/// How requests are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Kubernetes RBAC (the default).
    #[default]
    Rbac,
    /// Everything is allowed, impersonation included (kube-apiserver's `AlwaysAllow`); only for
    /// measuring what RBAC costs.
    AlwaysAllow,
}

/// The authorizer's state, owned by the cluster.
#[derive(Debug, Default)]
pub struct Rbac {
    index: RwLock<Index>,
}

impl Rbac {
    /// An authorizer over `index` (usually built from the stored RBAC objects at start).
    pub fn new(index: Index) -> Self {
        Rbac {
            index: RwLock::new(index),
        }
    }

    /// The index, for a decision or a review; held briefly, as writers of RBAC objects wait on it.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a committed change of an RBAC object (`None`: it is gone).
    pub fn apply(&self, kind: Kind, namespace: &str, name: &str, obj: Option<&Value>) {
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .apply(kind, namespace, name, obj);
    }

    /// Decides `attrs` for `user`: `Ok` when allowed, else the 403 kube-apiserver answers.
    pub fn check(&self, user: &UserInfo, attrs: &Attributes) -> Result<(), ApiError> {
        match self.read().authorize(user, attrs) {
            Decision::Allow => Ok(()),
            Decision::Deny { reason } => Err(forbidden(user, attrs, &reason)),
        }
    }
}

/// Authorizes one request: impersonation headers, then the request as the user it runs as.
/// Returns that user.
pub fn authorize_request(
    rbac: &Rbac,
    mode: Mode,
    user: UserInfo,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let user = match impersonation::requested(headers)? {
        None => user,
        Some(request) => {
            if mode == Mode::Rbac {
                for attrs in request.checks() {
                    rbac.check(&user, &attrs)?;
                }
            }
            request.into_user()
        }
    };
    if mode == Mode::Rbac {
        rbac.check(&user, &request_attributes(method, path, query))?;
    }
    Ok(user)
}

/// The 403 kube-apiserver answers when `user` may not do `attrs` (`responsewriters.Forbidden`).
pub fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let (message, target) = match attrs {
        Attributes::NonResource { verb, path } => (
            format!("User {:?} cannot {verb} path {path:?}", user.name),
            None,
        ),
        Attributes::Resource(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {:?}", r.namespace)
            };
            (
                format!(
                    "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                    user.name, r.verb, r.api_group
                ),
                Some(ErrorTarget::new(&r.api_group, &r.resource, &r.name)),
            )
        }
    };
    let message = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    forbidden_on(target, message)
}

/// A 403 about `target` (`apierrors.NewForbidden`): `RESOURCE[.GROUP] ["NAME"] is forbidden: …`.
pub fn forbidden_on(target: Option<ErrorTarget>, message: String) -> ApiError {
    match target {
        None => ApiError::Forbidden(format!("forbidden: {message}")),
        Some(target) => {
            let qualified = if target.group.is_empty() {
                target.kind.clone()
            } else {
                format!("{}.{}", target.kind, target.group)
            };
            let message = if target.name.is_empty() {
                format!("{qualified} is forbidden: {message}")
            } else {
                format!("{qualified} {:?} is forbidden: {message}", target.name)
            };
            ApiError::ForbiddenOn { target, message }
        }
    }
}

#[cfg(test)]
mod tests;
