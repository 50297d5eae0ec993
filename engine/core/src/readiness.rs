//! Readiness of composed resources: the checks of a template run against the *observed*
//! resource. A missing field means "not ready"; a malformed path or a value of the wrong type
//! is a warning and also "not ready" (Crossplane's classification). Checks run only on
//! resources that exist.

use serde_json::Value;

use crate::compile::CompiledReadinessCheck;
use crate::fieldpath::AccessError;

/// The verdict on one composed resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every check passed.
    Ready,
    /// A check failed, or a field it reads is missing.
    NotReady,
    /// Not ready because a check could not be evaluated; the message says why.
    Unknown(String),
}

impl Readiness {
    /// True only for [`Readiness::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// Runs every check (all must pass); no checks means the `Ready` condition must be `True`.
pub fn evaluate(checks: &[CompiledReadinessCheck], observed: &Value) -> Readiness {
    if checks.is_empty() {
        return if condition_status(observed, "Ready") == "True" {
            Readiness::Ready
        } else {
            Readiness::NotReady
        };
    }
    for (i, check) in checks.iter().enumerate() {
        match run(check, observed) {
            Ok(true) => {}
            Ok(false) => return Readiness::NotReady,
            Err(message) => return Readiness::Unknown(format!("readiness check {i}: {message}")),
        }
    }
    Readiness::Ready
}

fn run(check: &CompiledReadinessCheck, observed: &Value) -> Result<bool, String> {
    let get = |path: &crate::fieldpath::FieldPath| match path.get(observed) {
        Ok(v) => Ok(Some(v)),
        Err(AccessError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    Ok(match check {
        CompiledReadinessCheck::None => true,
        CompiledReadinessCheck::NonEmpty(path) => get(path)?.is_some(),
        CompiledReadinessCheck::MatchString(path, want) => match get(path)? {
            None => false,
            Some(Value::String(s)) => s == want,
            Some(_) => return Err(format!("{path}: not a string")),
        },
        CompiledReadinessCheck::MatchInteger(path, want) => match get(path)? {
            None => false,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => i == *want,
                None => return Err(format!("{path}: not an integer")),
            },
            Some(_) => return Err(format!("{path}: not a number")),
        },
        CompiledReadinessCheck::MatchTrue(path) | CompiledReadinessCheck::MatchFalse(path) => {
            let want = matches!(check, CompiledReadinessCheck::MatchTrue(_));
            match get(path)? {
                None => false,
                Some(Value::Bool(b)) => *b == want,
                Some(_) => return Err(format!("{path}: not a bool")),
            }
        }
        CompiledReadinessCheck::MatchCondition { kind, status } => {
            condition_status(observed, kind) == status
        }
        CompiledReadinessCheck::Malformed(message) => return Err(message.clone()),
    })
}

/// The status of the condition of type `kind`, `Unknown` when absent.
pub fn condition_status<'a>(object: &'a Value, kind: &str) -> &'a str {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldpath::FieldPath;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).expect("parses")
    }

    #[test]
    fn every_check_type() {
        let obj = json!({"status": {"phase": "Running", "replicas": 3, "ok": true, "no": false,
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        use CompiledReadinessCheck as C;
        let cases: Vec<(Vec<C>, Readiness, &str)> = vec![
            (vec![], Readiness::Ready, "default: Ready condition True"),
            (vec![C::None], Readiness::Ready, "None is always ready"),
            (
                vec![C::NonEmpty(p("status.phase"))],
                Readiness::Ready,
                "NonEmpty present",
            ),
            (
                vec![C::NonEmpty(p("status.missing"))],
                Readiness::NotReady,
                "NonEmpty missing",
            ),
            (
                vec![C::MatchString(p("status.phase"), "Running".into())],
                Readiness::Ready,
                "MatchString",
            ),
            (
                vec![C::MatchString(p("status.phase"), "Pending".into())],
                Readiness::NotReady,
                "MatchString mismatch",
            ),
            (
                vec![C::MatchInteger(p("status.replicas"), 3)],
                Readiness::Ready,
                "MatchInteger",
            ),
            (
                vec![C::MatchInteger(p("status.replicas"), 4)],
                Readiness::NotReady,
                "MatchInteger mismatch",
            ),
            (
                vec![C::MatchTrue(p("status.ok"))],
                Readiness::Ready,
                "MatchTrue",
            ),
            (
                vec![C::MatchFalse(p("status.no"))],
                Readiness::Ready,
                "MatchFalse",
            ),
            (
                vec![C::MatchTrue(p("status.no"))],
                Readiness::NotReady,
                "MatchTrue on false",
            ),
            (
                vec![C::MatchCondition {
                    kind: "Synced".into(),
                    status: "False".into(),
                }],
                Readiness::Ready,
                "MatchCondition",
            ),
            (
                vec![C::MatchCondition {
                    kind: "Other".into(),
                    status: "Unknown".into(),
                }],
                Readiness::Ready,
                "absent condition reads as Unknown",
            ),
            (
                vec![C::None, C::NonEmpty(p("status.missing"))],
                Readiness::NotReady,
                "all checks must pass",
            ),
        ];
        for (checks, want, why) in cases {
            assert_eq!(evaluate(&checks, &obj), want, "{why}");
        }
        assert!(
            matches!(
                evaluate(&[C::MatchString(p("status.replicas"), "3".into())], &obj),
                Readiness::Unknown(_)
            ),
            "wrong type is a warning, not ready"
        );
        assert!(
            matches!(
                evaluate(&[C::NonEmpty(p("status.phase.x"))], &obj),
                Readiness::Unknown(_)
            ),
            "reading through a string is a warning, not ready"
        );
    }
}
