//! Resolves `apiVersion` + `kind` to an API resource (plural, scope) through discovery, once per
//! kind, so composed resources of any kind (ConfigMaps, Secrets, other XRs) can be read and
//! written through the dynamic API.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};

use crate::error::{Error, Result};
use crate::inventory::ResourceRef;

/// A resolved kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    /// Group, version, kind and plural, for the dynamic API.
    pub resource: ApiResource,
    /// Whether objects of the kind live in a namespace.
    pub namespaced: bool,
}

/// Discovery results, cached per `apiVersion`/`kind`. Only successes are cached: a kind whose
/// CRD is still being served is looked up again next time.
pub struct Kinds {
    client: Client,
    cache: Mutex<HashMap<(String, String), Kind>>,
}

/// Splits `group/version` (or the core group's `version`).
pub fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

impl Kinds {
    /// An empty cache that discovers through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client kinds are resolved with.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The API resource of `kind` in `api_version` (`group/version`, or `v1`), from the cache
    /// or by discovery. A kind the API server does not serve (yet) is an
    /// [`ErrorClass::Waiting`](crate::ErrorClass::Waiting) error; other discovery failures are
    /// API errors.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Kind> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(k.clone());
        }
        let (resource, caps) = pinned_kind(&self.client, &gvk(api_version, kind))
            .await
            .map_err(|source| {
                if crate::error::is_not_found(&source)
                    || matches!(source, kube::Error::Discovery(_))
                {
                    Error::waiting(
                        format!("kind {api_version}/{kind}"),
                        format!("not served by the API server: {source}"),
                    )
                } else {
                    Error::kube("discovering", format!("kind {api_version}/{kind}"), source)
                }
            })?;
        let resolved = Kind {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, resolved.clone());
        Ok(resolved)
    }

    /// Records a resolved kind, as a discovery would (tests against a scripted API).
    #[cfg(test)]
    pub(crate) fn know(&self, kind: Kind) {
        let key = (
            kind.resource.api_version.clone(),
            kind.resource.kind.clone(),
        );
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, kind);
    }

    /// Forgets a kind (after its CRD was deleted or changed).
    pub fn forget(&self, api_version: &str, kind: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(api_version.to_owned(), kind.to_owned()));
    }

    /// The dynamic API for one referenced object, checking namespace against scope.
    pub(crate) async fn api_for(&self, r: &ResourceRef) -> Result<(Api<DynamicObject>, Kind)> {
        let kind = self.resolve(&r.api_version, &r.kind).await?;
        let api = match (&r.namespace, kind.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
            (None, false) | (Some(_), false) => Api::all_with(self.client.clone(), &kind.resource),
            (None, true) => {
                return Err(Error::invalid(
                    r.display(),
                    format!("{} is namespaced: metadata.namespace is required", r.kind),
                ));
            }
        };
        Ok((api, kind))
    }
}
