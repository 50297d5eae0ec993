//! Status conditions as plain JSON, and the comparison that keeps a converged object free of
//! writes. Pure: the caller passes the clock reading in.

use serde_json::{Map, Value, json};

pub(crate) const SYNCED: &str = "Synced";
pub(crate) const READY: &str = "Ready";
pub(crate) const ESTABLISHED: &str = "Established";
pub(crate) const OFFERED: &str = "Offered";

/// One condition the controller wants on an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) kind: &'static str,
    pub(crate) status: bool,
    pub(crate) reason: String,
    pub(crate) message: Option<String>,
}

impl Wanted {
    pub(crate) fn yes(kind: &'static str, reason: &str) -> Self {
        Self {
            kind,
            status: true,
            reason: reason.to_owned(),
            message: None,
        }
    }

    pub(crate) fn no(kind: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: false,
            reason: reason.to_owned(),
            message: Some(message.into()),
        }
    }

    fn to_value(&self) -> Value {
        let mut c = json!({
            "type": self.kind,
            "status": if self.status { "True" } else { "False" },
            "reason": self.reason,
        });
        if let (Some(m), Some(o)) = (&self.message, c.as_object_mut()) {
            o.insert("message".into(), Value::String(m.clone()));
        }
        c
    }
}

/// Sets `condition` (a JSON condition with `type`) in `conditions`, replacing the one of the
/// same type. `lastTransitionTime` is kept when the status did not change and set to `now` when
/// it did, so re-deciding the same condition never changes the object.
pub(crate) fn set(conditions: &mut Vec<Value>, condition: Value, now: &str) {
    let kind = condition.get("type").cloned();
    let mut condition = condition;
    let existing = conditions
        .iter()
        .position(|c| c.get("type") == kind.as_ref());
    let transition = match existing.map(|i| &conditions[i]) {
        Some(old) if old.get("status") == condition.get("status") => old
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| Value::String(now.to_owned())),
        _ => Value::String(now.to_owned()),
    };
    if let Some(o) = condition.as_object_mut() {
        o.insert("lastTransitionTime".into(), transition);
    }
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// `status` with the wanted conditions set (see [`set`]).
pub(crate) fn with_conditions(status: &Value, wanted: &[Wanted], now: &str) -> Value {
    let mut out = match status {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut conditions: Vec<Value> = match out.get("conditions") {
        Some(Value::Array(cs)) => cs.clone(),
        _ => Vec::new(),
    };
    for w in wanted {
        set(&mut conditions, w.to_value(), now);
    }
    out.insert("conditions".into(), Value::Array(conditions));
    Value::Object(out)
}

/// Merges render-produced conditions (JSON, without timestamps) into `status` by type.
pub(crate) fn merge_json_conditions(status: &mut Value, produced: &[Value], now: &str) {
    let Some(obj) = status.as_object_mut() else {
        return;
    };
    let mut conditions: Vec<Value> = match obj.get("conditions") {
        Some(Value::Array(cs)) => cs.clone(),
        _ => Vec::new(),
    };
    for c in produced {
        set(&mut conditions, c.clone(), now);
    }
    obj.insert("conditions".into(), Value::Array(conditions));
}

/// True when writing `desired` over `observed` would change something: every field of `desired`
/// must already be present with the same value. Fields only `observed` has are ignored (other
/// writers own them).
pub(crate) fn differs(observed: Option<&Value>, desired: &Value) -> bool {
    match observed {
        None => !is_empty(desired),
        Some(o) => !contains(o, desired),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        _ => false,
    }
}

/// `superset` contains every field of `subset` with an equal value (objects recursively, arrays
/// and scalars exactly).
pub(crate) fn contains(superset: &Value, subset: &Value) -> bool {
    match (superset, subset) {
        (Value::Object(a), Value::Object(b)) => b.iter().all(|(k, v)| match a.get(k) {
            Some(av) => contains(av, v),
            None => is_empty(v),
        }),
        (a, b) => a == b,
    }
}

/// The status of condition `kind` in a status object, if present.
pub(crate) fn status_of<'a>(status: Option<&'a Value>, kind: &str) -> Option<&'a str> {
    status?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?
        .get("status")?
        .as_str()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:05:00Z";

    #[test]
    fn re_deciding_the_same_condition_keeps_its_transition_time() {
        let first = with_conditions(&json!({}), &[Wanted::yes(SYNCED, "ReconcileSuccess")], T0);
        let second = with_conditions(&first, &[Wanted::yes(SYNCED, "ReconcileSuccess")], T1);
        assert_eq!(first, second);
        assert!(!differs(Some(&first), &second));
    }

    #[test]
    fn a_status_flip_moves_the_transition_time() {
        let first = with_conditions(&json!({}), &[Wanted::yes(SYNCED, "ReconcileSuccess")], T0);
        let second = with_conditions(&first, &[Wanted::no(SYNCED, "ReconcileError", "boom")], T1);
        assert_eq!(second["conditions"][0]["lastTransitionTime"], T1);
        assert!(differs(Some(&first), &second));
    }

    #[test]
    fn a_message_change_without_a_flip_is_a_change_but_keeps_the_time() {
        let first = with_conditions(
            &json!({}),
            &[Wanted::no(READY, "Creating", "Unready resources: a")],
            T0,
        );
        let second = with_conditions(
            &first,
            &[Wanted::no(READY, "Creating", "Unready resources: b")],
            T1,
        );
        assert_eq!(second["conditions"][0]["lastTransitionTime"], T0);
        assert!(differs(Some(&first), &second));
    }

    #[test]
    fn fields_only_the_observed_object_has_are_not_a_difference() {
        let observed = json!({"a": 1, "b": {"c": 2, "d": 3}});
        assert!(!differs(Some(&observed), &json!({"b": {"c": 2}})));
        assert!(differs(Some(&observed), &json!({"b": {"c": 3}})));
        assert!(differs(Some(&observed), &json!({"e": 1})));
    }

    #[test]
    fn arrays_compare_exactly() {
        let observed = json!({"xs": [1, 2]});
        assert!(differs(Some(&observed), &json!({"xs": [1]})));
        assert!(!differs(Some(&observed), &json!({"xs": [1, 2]})));
    }

    #[test]
    fn an_empty_desired_status_on_an_absent_status_is_no_change() {
        assert!(!differs(None, &json!({"x": {}})));
        assert!(differs(None, &json!({"x": 1})));
    }

    #[test]
    fn render_conditions_merge_by_type() {
        let mut status =
            with_conditions(&json!({}), &[Wanted::yes(SYNCED, "ReconcileSuccess")], T0);
        merge_json_conditions(
            &mut status,
            &[json!({"type": "Ready", "status": "True", "reason": "Available"})],
            T0,
        );
        assert_eq!(status_of(Some(&status), READY), Some("True"));
        assert_eq!(status_of(Some(&status), SYNCED), Some("True"));
    }
}
