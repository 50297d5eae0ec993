//! Function packages pulled from an OCI registry and run without Docker.
//!
//! Most composition functions are a static binary in an image (`ENTRYPOINT ["/function"]`).
//! [`pull`] fetches the image for this machine's platform over the OCI distribution API (an
//! index is resolved to its linux manifest), checks every blob's SHA-256 digest, unpacks the
//! layers into a root filesystem cached by the manifest's digest, and returns the image's
//! entrypoint and command resolved inside it, for [`crate::process::Supervised`] to run as a
//! local process. The image is not isolated: only run packages you trust, as you would their
//! binaries.
//!
//! Written by hand over `reqwest`, `tar` and `flate2` rather than a registry client crate: pull is
//! four kinds of GET and a digest check, anonymous or with a registry's anonymous bearer token,
//! and it keeps the build free of a second HTTP and crypto stack.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";
/// The largest manifest or config accepted, and the largest layer.
const MAX_DOCUMENT: usize = 4 * 1024 * 1024;
const MAX_LAYER: usize = 512 * 1024 * 1024;

/// Why a package could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The package is not `REGISTRY/REPOSITORY[:TAG|@DIGEST]`.
    #[error("package {package:?}: {message}")]
    Reference {
        /// The package as written.
        package: String,
        /// What is wrong with it.
        message: String,
    },
    /// A registry request failed: no connection, a timeout, or a status other than success.
    #[error("pulling {what}: {message}")]
    Http {
        /// The URL requested.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// A manifest or blob does not hash to the digest it was asked for by.
    #[error("{what}: digest {got} does not match {want}")]
    Digest {
        /// The package or blob.
        what: String,
        /// The digest expected.
        want: String,
        /// The digest of what was received.
        got: String,
    },
    /// The image cannot be run: no image for this platform, a malformed manifest or config, a
    /// layer that does not unpack, no entrypoint.
    #[error("{what}: {message}")]
    Image {
        /// The package.
        what: String,
        /// What is wrong with the image.
        message: String,
    },
    /// The cache directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `registry/repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The registry host, with its port if any (`registry.example:5000`).
    pub registry: String,
    /// The repository path within the registry (`crossplane-contrib/function-auto-ready`).
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl Reference {
    /// Parses a package reference; a missing tag is `latest`.
    pub fn parse(package: &str) -> Result<Self, OciError> {
        let err = |message: &str| OciError::Reference {
            package: package.to_owned(),
            message: message.to_owned(),
        };
        let (name, reference) = match package.split_once('@') {
            Some((n, d)) if d.starts_with("sha256:") && d.len() == 71 => (n, d.to_owned()),
            Some(_) => return Err(err("a digest is sha256: and 64 hex digits")),
            None => match package.rsplit_once(':') {
                // A colon after the last slash is a tag (one before it is a registry port).
                Some((n, t)) if !t.contains('/') => (n, t.to_owned()),
                _ => (package, "latest".to_owned()),
            },
        };
        let Some((registry, repository)) = name.split_once('/') else {
            return Err(err("expected REGISTRY/REPOSITORY[:TAG|@DIGEST]"));
        };
        if registry.is_empty() || repository.is_empty() || reference.is_empty() {
            return Err(err("expected REGISTRY/REPOSITORY[:TAG|@DIGEST]"));
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            reference,
        })
    }
}

/// A pulled package, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledFunction {
    /// The manifest's digest: what the cache is keyed by.
    pub digest: String,
    /// The unpacked root filesystem, in the cache.
    pub rootfs: PathBuf,
    /// Entrypoint and command, the program resolved inside the root filesystem.
    pub argv: Vec<String>,
}

/// How to reach a registry.
#[derive(Clone, Debug)]
pub struct Registry {
    /// Plain HTTP (a registry on loopback); HTTPS otherwise.
    pub plain_http: bool,
    /// The limit on connecting and on each request, body included.
    pub timeout: Duration,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    reference: Reference,
}

impl Client {
    async fn get(
        &mut self,
        path: &str,
        accept: &str,
        limit: usize,
    ) -> Result<(Vec<u8>, Option<String>), OciError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.reference.repository);
        let http_err = |message: String| OciError::Http {
            what: url.clone(),
            message,
        };
        for attempt in 0..2 {
            let mut req = self.http.get(&url).header("Accept", accept);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let rsp = req.send().await.map_err(|e| http_err(e.to_string()))?;
            if rsp.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = rsp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                self.token = Some(self.anonymous_token(&challenge).await?);
                continue;
            }
            if !rsp.status().is_success() {
                return Err(http_err(format!("HTTP {}", rsp.status())));
            }
            let content_type = rsp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if rsp.content_length().is_some_and(|l| l as usize > limit) {
                return Err(http_err(format!("larger than {limit} bytes")));
            }
            let body = rsp.bytes().await.map_err(|e| http_err(e.to_string()))?;
            if body.len() > limit {
                return Err(http_err(format!("larger than {limit} bytes")));
            }
            return Ok((body.to_vec(), content_type));
        }
        Err(http_err("unauthorized".to_owned()))
    }

    /// A registry's anonymous pull token (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`).
    async fn anonymous_token(&self, challenge: &str) -> Result<String, OciError> {
        let err = |message: String| OciError::Http {
            what: format!("a pull token for {}", self.reference.registry),
            message,
        };
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return Err(err(format!(
                "the registry asks for credentials ({challenge:?}); only anonymous pulls are supported"
            )));
        };
        let mut realm = None;
        let mut query = Vec::new();
        for part in params.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim_matches('"').to_owned();
                match k {
                    "realm" => realm = Some(v),
                    "service" | "scope" => query.push((k.to_owned(), v)),
                    _ => {}
                }
            }
        }
        let realm = realm.ok_or_else(|| err("no realm in the challenge".to_owned()))?;
        let rsp = self
            .http
            .get(&realm)
            .query(&query)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !rsp.status().is_success() {
            return Err(err(format!("HTTP {}", rsp.status())));
        }
        let body: Value = rsp.json().await.map_err(|e| err(e.to_string()))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| err("no token in the answer".to_owned()))
    }
}

fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn check_digest(what: &str, bytes: &[u8], want: &str) -> Result<(), OciError> {
    let got = sha256(bytes);
    if got != want {
        return Err(OciError::Digest {
            what: what.to_owned(),
            want: want.to_owned(),
            got,
        });
    }
    Ok(())
}

/// This machine's architecture as OCI names it.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Pulls `package` into `cache` (unless its manifest's root filesystem is there already).
pub async fn pull(
    package: &str,
    cache: &Path,
    registry: &Registry,
) -> Result<PulledFunction, OciError> {
    let reference = Reference::parse(package)?;
    let http = reqwest::Client::builder()
        .timeout(registry.timeout)
        .connect_timeout(registry.timeout)
        .build()
        .map_err(|e| OciError::Http {
            what: package.to_owned(),
            message: e.to_string(),
        })?;
    let scheme = if registry.plain_http { "http" } else { "https" };
    let mut client = Client {
        http,
        base: format!("{scheme}://{}", reference.registry),
        token: None,
        reference: reference.clone(),
    };
    let image = |message: String| OciError::Image {
        what: package.to_owned(),
        message,
    };
    let (mut bytes, _) = client
        .get(
            &format!("manifests/{}", reference.reference),
            MANIFEST_TYPES,
            MAX_DOCUMENT,
        )
        .await?;
    if reference.reference.starts_with("sha256:") {
        check_digest(package, &bytes, &reference.reference)?;
    }
    let mut manifest: Value =
        serde_json::from_slice(&bytes).map_err(|e| image(format!("manifest: {e}")))?;
    // An index (multi-platform image): the manifest for linux on this architecture.
    if let Some(list) = manifest.get("manifests").and_then(Value::as_array) {
        let digest = list
            .iter()
            .find(|m| {
                m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                    && m.pointer("/platform/architecture").and_then(Value::as_str)
                        == Some(architecture())
            })
            .and_then(|m| m.get("digest"))
            .and_then(Value::as_str)
            .ok_or_else(|| image(format!("no linux/{} image in the index", architecture())))?
            .to_owned();
        (bytes, _) = client
            .get(&format!("manifests/{digest}"), MANIFEST_TYPES, MAX_DOCUMENT)
            .await?;
        check_digest(package, &bytes, &digest)?;
        manifest = serde_json::from_slice(&bytes).map_err(|e| image(format!("manifest: {e}")))?;
    }
    let digest = sha256(&bytes);
    let dir = cache.join(digest.replace(':', "-"));
    let rootfs = dir.join("rootfs");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OciError::Io { path, source }
    };
    let config_path = dir.join("config.json");
    let complete = dir.join("complete");
    if !complete.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&rootfs).map_err(io(&rootfs))?;
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| image("manifest: no config.digest".to_owned()))?
            .to_owned();
        let (config, _) = client
            .get(&format!("blobs/{config_digest}"), "*/*", MAX_DOCUMENT)
            .await?;
        check_digest(&format!("{package} config"), &config, &config_digest)?;
        std::fs::write(&config_path, &config).map_err(io(&config_path))?;
        let layers = manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, layer) in layers.iter().enumerate() {
            let what = format!("{package} layer {i}");
            let layer_digest = layer
                .get("digest")
                .and_then(Value::as_str)
                .ok_or_else(|| image(format!("layer {i}: no digest")))?;
            let media = layer.get("mediaType").and_then(Value::as_str).unwrap_or("");
            let (blob, _) = client
                .get(&format!("blobs/{layer_digest}"), "*/*", MAX_LAYER)
                .await?;
            check_digest(&what, &blob, layer_digest)?;
            let reader: Box<dyn Read> =
                if media.ends_with("gzip") || blob.starts_with(&[0x1f, 0x8b]) {
                    Box::new(flate2::read::GzDecoder::new(&blob[..]))
                } else if media.ends_with("tar") || media.is_empty() {
                    Box::new(&blob[..])
                } else {
                    return Err(image(format!(
                        "layer {i}: unsupported media type {media:?}"
                    )));
                };
            unpack(reader, &rootfs).map_err(|e| image(format!("layer {i}: {e}")))?;
        }
        std::fs::write(&complete, b"").map_err(io(&complete))?;
    }
    let config: Value = std::fs::read(&config_path)
        .map_err(io(&config_path))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| image(format!("config: {e}"))))?;
    let strings = |p: &str| -> Vec<String> {
        config
            .pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut argv = strings("/config/Entrypoint");
    argv.extend(strings("/config/Cmd"));
    let Some(program) = argv.first() else {
        return Err(image("the image has no entrypoint or command".to_owned()));
    };
    let inside = rootfs.join(program.trim_start_matches('/'));
    if !inside.starts_with(&rootfs) || !inside.is_file() {
        return Err(image(format!(
            "the entrypoint {program:?} is not a file in the image"
        )));
    }
    argv[0] = inside.display().to_string();
    Ok(PulledFunction {
        digest,
        rootfs,
        argv,
    })
}

/// Unpacks one layer, skipping whiteouts and anything that would land outside `rootfs`.
fn unpack(reader: Box<dyn Read + '_>, rootfs: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(".wh.") {
            // A whiteout deletes a lower layer's file.
            let target = rootfs.join(path.with_file_name(name.trim_start_matches(".wh.")));
            if target.starts_with(rootfs) {
                let _ = std::fs::remove_file(&target).or_else(|_| std::fs::remove_dir_all(&target));
            }
            continue;
        }
        // `unpack_in` refuses paths that leave the directory.
        entry.unpack_in(rootfs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_references_parse_as_registries_name_them() {
        let r = |s: &str| Reference::parse(s).map(|r| (r.registry, r.repository, r.reference));
        assert_eq!(
            r("registry.example/fns/function-kcl:v0.11.0").ok(),
            Some((
                "registry.example".into(),
                "fns/function-kcl".into(),
                "v0.11.0".into()
            ))
        );
        assert_eq!(
            r("127.0.0.1:5000/fn").ok(),
            Some(("127.0.0.1:5000".into(), "fn".into(), "latest".into()))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            r(&format!("127.0.0.1:5000/a/b@{digest}")).ok(),
            Some(("127.0.0.1:5000".into(), "a/b".into(), digest))
        );
        assert!(r("function-kcl").is_err());
        assert!(r("registry.example/fn@sha256:abc").is_err());
    }
}
