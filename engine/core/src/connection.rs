//! Connection details: what each composed resource contributes to the XR's connection secret.
//! `FromConnectionSecretKey` and `FromFieldPath` are skipped while the value is missing (it may
//! appear on a later reconcile); `FromValue` is a constant. The last writer of a key wins.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::compile::CompiledConnectionDetail;

/// Connection secret data: key → raw bytes.
pub type ConnectionDetails = BTreeMap<String, Vec<u8>>;

/// Extracts the connection details of one observed composed resource into `out`.
pub fn extract(
    details: &[CompiledConnectionDetail],
    observed: &Value,
    secret: &ConnectionDetails,
    out: &mut ConnectionDetails,
) {
    for detail in details {
        match detail {
            CompiledConnectionDetail::FromValue { name, value } => {
                out.insert(name.clone(), value.as_bytes().to_vec());
            }
            CompiledConnectionDetail::FromConnectionSecretKey { name, key } => {
                if let Some(v) = secret.get(key) {
                    out.insert(name.clone(), v.clone());
                }
            }
            CompiledConnectionDetail::FromFieldPath { name, path } => {
                if let Ok(v) = path.get(observed) {
                    let bytes = match v {
                        Value::String(s) => s.as_bytes().to_vec(),
                        other => other.to_string().into_bytes(),
                    };
                    out.insert(name.clone(), bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldpath::FieldPath;
    use serde_json::json;

    #[test]
    fn every_detail_type_and_last_writer_wins() {
        let observed = json!({"status": {"endpoint": "db.local", "port": 5432}});
        let secret: ConnectionDetails = [("password".to_owned(), b"s3cret".to_vec())].into();
        let details = vec![
            CompiledConnectionDetail::FromValue {
                name: "user".into(),
                value: "admin".into(),
            },
            CompiledConnectionDetail::FromConnectionSecretKey {
                name: "pw".into(),
                key: "password".into(),
            },
            CompiledConnectionDetail::FromConnectionSecretKey {
                name: "absent".into(),
                key: "nope".into(),
            },
            CompiledConnectionDetail::FromFieldPath {
                name: "host".into(),
                path: FieldPath::parse("status.endpoint").expect("p"),
            },
            CompiledConnectionDetail::FromFieldPath {
                name: "port".into(),
                path: FieldPath::parse("status.port").expect("p"),
            },
            CompiledConnectionDetail::FromFieldPath {
                name: "missing".into(),
                path: FieldPath::parse("status.nope").expect("p"),
            },
            CompiledConnectionDetail::FromValue {
                name: "user".into(),
                value: "root".into(),
            },
        ];
        let mut out = ConnectionDetails::new();
        extract(&details, &observed, &secret, &mut out);
        let want: ConnectionDetails = [
            ("host".to_owned(), b"db.local".to_vec()),
            ("port".to_owned(), b"5432".to_vec()),
            ("pw".to_owned(), b"s3cret".to_vec()),
            ("user".to_owned(), b"root".to_vec()),
        ]
        .into();
        assert_eq!(out, want);
    }
}
