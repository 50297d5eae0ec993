//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the `Impersonate-*` headers, the
//! `impersonate` checks each identity asked for needs, and the user the request then runs as —
//! as kube-apiserver's impersonation filter does. Headers are never ignored: a request that asks
//! is either allowed to impersonate or refused.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

use super::attributes::{Attributes, ResourceAttributes};
use super::policy::SERVICE_ACCOUNT_PREFIX;
use crate::auth::{GROUP_AUTHENTICATED, UserInfo};
use crate::error::ApiError;

/// The header naming the user to act as; every other impersonation header needs it.
pub const HEADER_USER: &str = "impersonate-user";
/// A header naming one group to act with; repeat it for more.
pub const HEADER_GROUP: &str = "impersonate-group";
/// The header naming the uid to act as.
pub const HEADER_UID: &str = "impersonate-uid";
/// The prefix of headers setting an `extra` entry (the rest of the name is its key).
pub const HEADER_EXTRA_PREFIX: &str = "impersonate-extra-";

/// The user of unauthenticated requests.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of unauthenticated requests.
pub const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group of every ServiceAccount, given to an impersonated one asked without groups.
pub const GROUP_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// The identity a request asks to act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    /// The user name to act as.
    pub user: String,
    /// The groups to act with; none asked for a ServiceAccount user means its ServiceAccount
    /// groups.
    pub groups: Vec<String>,
    /// The uid to act as, if asked for.
    pub uid: Option<String>,
    /// The `extra` entries to act with, keys lower-case.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The impersonation a request's headers ask for; `None` when they ask for none. Groups, uid or
/// extras without a user are a 400, as in Kubernetes.
pub fn requested(headers: &HeaderMap) -> Result<Option<Impersonation>, ApiError> {
    let text = |name: &str| -> Result<Vec<String>, ApiError> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    ApiError::BadRequest(format!("the {name} header is not valid text"))
                })
            })
            .collect()
    };
    let users = text(HEADER_USER)?;
    let groups = text(HEADER_GROUP)?;
    let uids = text(HEADER_UID)?;
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(HEADER_EXTRA_PREFIX) {
            let key = percent_decode(key).to_lowercase();
            let value = value.to_str().map_err(|_| {
                ApiError::BadRequest(format!("the {name} header is not valid text"))
            })?;
            extra.entry(key).or_default().push(value.to_owned());
        }
    }
    let Some(user) = users.first() else {
        if groups.is_empty() && uids.is_empty() && extra.is_empty() {
            return Ok(None);
        }
        return Err(ApiError::BadRequest(
            "requested impersonation of groups, a uid or extra fields without impersonating a user"
                .into(),
        ));
    };
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::BadRequest(
            "only one Impersonate-User and one Impersonate-Uid header may be given".into(),
        ));
    }
    Ok(Some(Impersonation {
        user: user.clone(),
        groups,
        uid: uids.into_iter().next(),
        extra,
    }))
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

fn check(verb_group: &str, resource: &str, sub: &str, name: &str, ns: &str) -> Attributes {
    Attributes::Resource(ResourceAttributes {
        verb: "impersonate".into(),
        api_group: verb_group.into(),
        api_version: "*".into(),
        resource: resource.into(),
        subresource: sub.into(),
        name: name.into(),
        namespace: ns.into(),
    })
}

impl Impersonation {
    /// A service account user, split into namespace and name.
    fn service_account(&self) -> Option<(&str, &str)> {
        self.user
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)?
            .split_once(':')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
    }

    /// The `impersonate` checks, in kube-apiserver's order: the user (or service account), each
    /// group, each extra value, the uid. All must pass.
    pub fn checks(&self) -> Vec<Attributes> {
        let mut out = vec![match self.service_account() {
            Some((ns, name)) => check("", "serviceaccounts", "", name, ns),
            None => check("", "users", "", &self.user, ""),
        }];
        out.extend(self.groups.iter().map(|g| check("", "groups", "", g, "")));
        for (key, values) in &self.extra {
            out.extend(
                values
                    .iter()
                    .map(|v| check("authentication.k8s.io", "userextras", key, v, "")),
            );
        }
        if let Some(uid) = &self.uid {
            out.push(check("authentication.k8s.io", "uids", "", uid, ""));
        }
        out
    }

    /// The user the request runs as: a service account without groups gets its fixed groups;
    /// everyone but `system:anonymous` is in `system:authenticated` unless
    /// `system:unauthenticated` was asked for; `system:anonymous` is in `system:unauthenticated`.
    pub fn into_user(self) -> UserInfo {
        let mut groups = self.groups.clone();
        if groups.is_empty()
            && let Some((ns, _)) = self.service_account()
        {
            groups = vec![
                GROUP_SERVICE_ACCOUNTS.to_owned(),
                format!("{GROUP_SERVICE_ACCOUNTS}:{ns}"),
            ];
        }
        if self.user == ANONYMOUS {
            if !groups.iter().any(|g| g == GROUP_UNAUTHENTICATED) {
                groups.push(GROUP_UNAUTHENTICATED.to_owned());
            }
        } else if !groups
            .iter()
            .any(|g| g == GROUP_AUTHENTICATED || g == GROUP_UNAUTHENTICATED)
        {
            groups.push(GROUP_AUTHENTICATED.to_owned());
        }
        UserInfo {
            name: self.user,
            uid: self.uid.unwrap_or_default(),
            groups,
            extra: self.extra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn no_impersonation_headers_ask_for_nothing() {
        assert_eq!(requested(&headers(&[])).unwrap(), None);
    }

    #[test]
    fn groups_without_a_user_are_a_bad_request() {
        let err = requested(&headers(&[("Impersonate-Group", "devs")])).unwrap_err();
        assert_eq!(err.code(), 400);
    }

    #[test]
    fn an_impersonated_user_is_authenticated_and_has_the_groups_asked_for() {
        let i = requested(&headers(&[
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "qa"),
            ("Impersonate-Extra-Scopes", "view"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            i.checks(),
            vec![
                check("", "users", "", "alice", ""),
                check("", "groups", "", "devs", ""),
                check("", "groups", "", "qa", ""),
                check("authentication.k8s.io", "userextras", "scopes", "view", ""),
            ]
        );
        let user = i.into_user();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["devs", "qa", "system:authenticated"]);
        assert_eq!(user.extra["scopes"], ["view"]);
    }

    #[test]
    fn an_impersonated_service_account_is_checked_in_its_namespace_and_gets_its_groups() {
        let i = requested(&headers(&[(
            "Impersonate-User",
            "system:serviceaccount:team-a:ci",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(
            i.checks(),
            vec![check("", "serviceaccounts", "", "ci", "team-a")]
        );
        assert_eq!(
            i.into_user().groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team-a",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn impersonating_anonymous_is_unauthenticated() {
        let i = requested(&headers(&[("Impersonate-User", "system:anonymous")]))
            .unwrap()
            .unwrap();
        assert_eq!(i.into_user().groups, ["system:unauthenticated"]);
    }
}
