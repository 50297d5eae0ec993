//! Secrets encrypted at rest: the keys, and sealing and opening one stored value.
//!
//! kube-apiserver's `EncryptionConfiguration` idea, reduced to what a single-process control
//! plane needs: AES-256-GCM (ring's AEAD, the workspace's TLS crypto) with keys kept in
//! [`KEYS_FILE`] in the data dir (owner-only, created at first start), apart from the store, so
//! a copied store file does not leak Secret values. A sealed value is
//!
//! ```text
//! k8s:enc:aesgcm:v1:<key name>:<12-byte random nonce><ciphertext and 16-byte tag>
//! ```
//!
//! (kube-apiserver's prefix for its `aesgcm` provider), with the value's store key as
//! associated data, so a sealed value cannot be moved to another object or event. The first key
//! in the file seals; every key opens, so a rotated-out key still reads what it sealed. A value
//! without the prefix is plaintext (a store from before encryption) and is read as is.
//!
//! Random 96-bit nonces keep AES-GCM safe for about 2^32 seals per key; rotate
//! (`strata up --rotate-encryption-key`) long before, which re-seals every Secret at start.
//!
//! What is sealed (the Secret objects and their watch events) is decided by [`crate::store`].

use std::path::{Path, PathBuf};

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

/// The keys file in the data dir.
pub(crate) const KEYS_FILE: &str = "encryption-keys.json";
/// The prefix of every sealed value, before the key name.
pub(crate) const PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:";
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("Secret encryption keys {}: {doing}: {source}", .path.display())]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    #[error("Secret encryption keys {}: {detail}", .path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error(
        "{what}: sealed with encryption key `{key}`, which is not in {KEYS_FILE} (restore the keys file of this store)"
    )]
    UnknownKey { what: String, key: String },
    #[error("{what}: the sealed value is corrupt or was sealed for another object")]
    Unseal { what: String },
}

/// One key as stored in [`KEYS_FILE`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StoredKey {
    name: String,
    /// 32 bytes, base64.
    secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct KeysFile {
    /// The first seals; all open.
    keys: Vec<StoredKey>,
}

/// The keys that seal and open Secret values.
pub struct Keyring {
    /// Non-empty; the first seals.
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: key material is never printed.
        let names: Vec<&str> = self.keys.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Keyring").field("keys", &names).finish()
    }
}

impl Keyring {
    /// Reads the data dir's keys, creating the first key when there is none and a new sealing
    /// key when `rotate` is set (older keys stay, to open what they sealed).
    pub fn load_or_create(dir: &Path, rotate: bool) -> Result<Keyring, EncryptionError> {
        let path = dir.join(KEYS_FILE);
        let io = |doing| {
            let path = path.clone();
            move |source| EncryptionError::Io {
                path,
                doing,
                source,
            }
        };
        let mut file = match std::fs::read(&path) {
            Ok(bytes) => {
                crate::store::private::tighten(&path, crate::store::private::FILE_MODE)
                    .map_err(io("making it owner-only"))?;
                serde_json::from_slice::<KeysFile>(&bytes).map_err(|e| {
                    EncryptionError::Invalid {
                        path: path.clone(),
                        detail: e.to_string(),
                    }
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeysFile::default(),
            Err(e) => return Err(io("reading")(e)),
        };
        if file.keys.is_empty() || rotate {
            let number = file
                .keys
                .iter()
                .filter_map(|k| k.name.strip_prefix("key-")?.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
                + 1;
            let secret: [u8; KEY_BYTES] = rand::random();
            file.keys.insert(
                0,
                StoredKey {
                    name: format!("key-{number}"),
                    secret: base64::engine::general_purpose::STANDARD.encode(secret),
                },
            );
            let text = serde_json::to_vec_pretty(&file).unwrap_or_default();
            crate::store::private::write_file(&path, &text).map_err(io("writing"))?;
        }
        Keyring::from_file(&path, &file)
    }

    fn from_file(path: &Path, file: &KeysFile) -> Result<Keyring, EncryptionError> {
        let invalid = |detail: String| EncryptionError::Invalid {
            path: path.to_owned(),
            detail,
        };
        let mut keys = Vec::with_capacity(file.keys.len());
        for (i, key) in file.keys.iter().enumerate() {
            if key.name.is_empty() || key.name.contains(':') {
                return Err(invalid(format!(
                    "keys[{i}].name `{}`: must be non-empty without `:`",
                    key.name
                )));
            }
            if keys.iter().any(|(n, _)| n == &key.name) {
                return Err(invalid(format!("keys[{i}].name `{}`: duplicate", key.name)));
            }
            let secret = base64::engine::general_purpose::STANDARD
                .decode(&key.secret)
                .ok()
                .filter(|s| s.len() == KEY_BYTES)
                .ok_or_else(|| {
                    invalid(format!(
                        "keys[{i}].secret: must be {KEY_BYTES} bytes, base64"
                    ))
                })?;
            let unbound = UnboundKey::new(&AES_256_GCM, &secret)
                .map_err(|_| invalid(format!("keys[{i}].secret: not an AES-256 key")))?;
            keys.push((key.name.clone(), LessSafeKey::new(unbound)));
        }
        if keys.is_empty() {
            return Err(invalid("no keys".into()));
        }
        Ok(Keyring { keys })
    }

    /// The name of the key that seals.
    pub fn sealing_key(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plaintext`, bound to `context` (the value's store key).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let (name, key) = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(
            PREFIX.len() + name.len() + 1 + NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len(),
        );
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&nonce);
        let mut sealed = plaintext.to_vec();
        // Sealing fails only for inputs over GCM's limit (64 GiB), far above any object.
        if key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .is_err()
        {
            return Vec::new();
        }
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of a stored value: opened when sealed, as is otherwise. `what` names the
    /// value in errors.
    pub fn open(
        keyring: Option<&Keyring>,
        what: &str,
        context: &[u8],
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let Some(name) = sealed_with(&stored) else {
            return Ok(stored);
        };
        let unknown = || EncryptionError::UnknownKey {
            what: what.to_owned(),
            key: String::from_utf8_lossy(name).into_owned(),
        };
        let key = keyring
            .and_then(|k| k.keys.iter().find(|(n, _)| n.as_bytes() == name))
            .map(|(_, key)| key)
            .ok_or_else(unknown)?;
        let rest = &stored[PREFIX.len() + name.len() + 1..];
        let unseal = || EncryptionError::Unseal {
            what: what.to_owned(),
        };
        if rest.len() < NONCE_LEN {
            return Err(unseal());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unseal())?;
        let mut buf = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| unseal())?;
        let n = plain.len();
        buf.truncate(n);
        Ok(buf)
    }

    /// Whether `stored` is sealed with the sealing key (nothing to re-seal).
    pub fn is_current(&self, stored: &[u8]) -> bool {
        sealed_with(stored) == Some(self.keys[0].0.as_bytes())
    }
}

/// The key name of a sealed value; `None` for plaintext.
pub(crate) fn sealed_with(stored: &[u8]) -> Option<&[u8]> {
    let rest = stored.strip_prefix(PREFIX)?;
    let end = rest.iter().position(|&b| b == b':')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("strata-enc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_own_context_and_hides_the_plaintext() {
        let dir = temp_dir("seal");
        let keys = Keyring::load_or_create(&dir, false).unwrap();
        let sealed = keys.seal(b"|secrets|ns|db", b"hunter2-password");
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:key-1:"));
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            Keyring::open(Some(&keys), "x", b"|secrets|ns|db", sealed.clone()).unwrap(),
            b"hunter2-password"
        );
        let moved = Keyring::open(Some(&keys), "secret ns/other", b"|secrets|ns|other", sealed);
        assert!(
            matches!(moved, Err(EncryptionError::Unseal { .. })),
            "{moved:?}"
        );
        // Plaintext from before encryption reads as is.
        assert_eq!(
            Keyring::open(Some(&keys), "x", b"k", b"{}".to_vec()).unwrap(),
            b"{}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rotated_keyring_seals_with_the_new_key_and_still_opens_the_old_one() {
        let dir = temp_dir("rotate");
        let first = Keyring::load_or_create(&dir, false).unwrap();
        let old = first.seal(b"k", b"v");
        let same = Keyring::load_or_create(&dir, false).unwrap();
        assert_eq!(same.sealing_key(), "key-1", "a restart keeps the key");
        let rotated = Keyring::load_or_create(&dir, true).unwrap();
        assert_eq!(rotated.sealing_key(), "key-2");
        assert!(!rotated.is_current(&old));
        assert_eq!(
            Keyring::open(Some(&rotated), "x", b"k", old.clone()).unwrap(),
            b"v"
        );
        assert!(rotated.is_current(&rotated.seal(b"k", b"v")));
        // Without the keys file, a sealed value is an error naming its key, never garbage.
        let err = Keyring::open(None, "secret ns/db", b"k", old).unwrap_err();
        assert!(err.to_string().contains("`key-1`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
