//! Bearer-token authentication and the kubeconfig that carries the token to clients.

use std::path::Path;

use serde_json::json;

/// A fresh random token: 32 bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The group whose members may do anything (kube-apiserver's superuser group).
pub const GROUP_MASTERS: &str = "system:masters";
/// The group every authenticated request belongs to.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// The admin user of the generated kubeconfig.
pub const ADMIN_USER: &str = "strata-admin";

/// Who a request is: what authentication found and authorization decides on (Kubernetes'
/// `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    /// Including `system:authenticated` for every authenticated user.
    pub groups: Vec<String>,
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The admin of the generated kubeconfig: a member of `system:masters`.
    pub fn admin() -> Self {
        Self {
            name: ADMIN_USER.to_owned(),
            uid: String::new(),
            groups: vec![GROUP_MASTERS.to_owned(), GROUP_AUTHENTICATED.to_owned()],
            extra: Default::default(),
        }
    }
}

/// The user an `Authorization` header value authenticates as: the admin for the exact admin
/// bearer token, nobody otherwise.
pub fn authenticate(header: Option<&str>, token: &str) -> Option<UserInfo> {
    authorized(header, token).then(UserInfo::admin)
}

/// Whether an `Authorization` header value carries `token`.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a kubeconfig for `server` (an `https://` URL) trusting `ca_pem`, with the token.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    token: &str,
    ca_pem: &str,
) -> std::io::Result<()> {
    use base64::Engine;
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "strata", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "strata", "user": {"token": token}}],
        "contexts": [{"name": "strata", "context": {"cluster": "strata", "user": "strata", "namespace": "default"}}],
        "current-context": "strata",
        "preferences": {},
    });
    let text = serde_saphyr::to_string(&config).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written beside the target and renamed over it, so a reader never sees half a file; the
    // temporary file is owner-only from its creation, as is what it replaces.
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    crate::store::private::create_file(&tmp)?;
    crate::store::private::tighten(&tmp, crate::store::private::FILE_MODE)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let t = new_token();
        assert!(authorized(Some(&format!("Bearer {t}")), &t));
        assert!(!authorized(Some("Bearer nope"), &t));
        assert!(!authorized(Some(&t), &t), "the Bearer scheme is required");
        assert!(!authorized(None, &t));
    }
}
