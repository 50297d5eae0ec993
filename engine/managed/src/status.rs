//! The pure half of status handling: which Ready and Synced conditions an outcome means, and
//! merging them into the existing list so that `lastTransitionTime` only moves on a transition.

use strata_provider::Condition;

/// `Ready` condition reasons.
pub(crate) const REASON_AVAILABLE: &str = "Available";
pub(crate) const REASON_CREATING: &str = "Creating";
pub(crate) const REASON_DELETING: &str = "Deleting";
pub(crate) const REASON_UNAVAILABLE: &str = "Unavailable";
/// `Synced` condition reasons.
pub(crate) const REASON_RECONCILE_SUCCESS: &str = "ReconcileSuccess";
pub(crate) const REASON_RECONCILE_ERROR: &str = "ReconcileError";
pub(crate) const REASON_RECONCILE_PAUSED: &str = "ReconcilePaused";

pub(crate) const TYPE_READY: &str = "Ready";
pub(crate) const TYPE_SYNCED: &str = "Synced";

/// A condition without its transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Desired {
    pub(crate) type_: &'static str,
    pub(crate) status: bool,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl Desired {
    pub(crate) fn ready(status: bool, reason: &'static str) -> Self {
        Self {
            type_: TYPE_READY,
            status,
            reason,
            message: String::new(),
        }
    }

    pub(crate) fn synced() -> Self {
        Self {
            type_: TYPE_SYNCED,
            status: true,
            reason: REASON_RECONCILE_SUCCESS,
            message: String::new(),
        }
    }

    pub(crate) fn sync_error(message: impl Into<String>) -> Self {
        Self {
            type_: TYPE_SYNCED,
            status: false,
            reason: REASON_RECONCILE_ERROR,
            message: message.into(),
        }
    }

    /// `Synced=False` for a runtime that stopped on its own: the create-pending guard has a
    /// reason of its own, which the XR controller recognises to tell the claim how to release it.
    pub(crate) fn stopped(reason: strata_provider::StopReason) -> Self {
        Self {
            type_: TYPE_SYNCED,
            status: false,
            reason: match reason {
                strata_provider::StopReason::CreateIncomplete => {
                    strata_provider::wire::REASON_EXTERNAL_CREATE_PENDING
                }
                _ => REASON_RECONCILE_ERROR,
            },
            message: reason.message().to_owned(),
        }
    }

    pub(crate) fn paused() -> Self {
        Self {
            type_: TYPE_SYNCED,
            status: false,
            reason: REASON_RECONCILE_PAUSED,
            message: strata_provider::StopReason::Paused.message().to_owned(),
        }
    }
}

/// Whether `existing` holds a condition of `type_` with status `True`.
pub(crate) fn is_true(existing: &[Condition], type_: &str) -> bool {
    existing
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The Ready reason for an existing cloud resource that is not ready: `Creating` until it has
/// been ready once, `Unavailable` after.
pub(crate) fn not_ready_reason(existing: &[Condition]) -> &'static str {
    let was_ready = existing
        .iter()
        .any(|c| c.type_ == TYPE_READY && (c.status == "True" || c.reason == REASON_UNAVAILABLE));
    if was_ready {
        REASON_UNAVAILABLE
    } else {
        REASON_CREATING
    }
}

/// Replaces the conditions of the given types, keeping `lastTransitionTime` when the status did
/// not change, and keeping conditions of other types untouched. The result is sorted by type.
/// Returns the merged list and the conditions whose status or reason changed (for events).
pub(crate) fn merge(
    existing: &[Condition],
    desired: &[Desired],
    now: &str,
) -> (Vec<Condition>, Vec<Desired>) {
    let mut merged: Vec<Condition> = existing
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    let mut transitions = Vec::new();
    for want in desired {
        let status = if want.status { "True" } else { "False" };
        let previous = existing.iter().find(|c| c.type_ == want.type_);
        let changed_status = previous.is_none_or(|c| c.status != status);
        if previous.is_none_or(|c| c.status != status || c.reason != want.reason) {
            transitions.push(want.clone());
        }
        let last_transition_time = match previous {
            Some(c) if !changed_status => c.last_transition_time.clone(),
            _ => Some(now.to_owned()),
        };
        merged.push(Condition {
            type_: want.type_.to_owned(),
            status: status.to_owned(),
            reason: want.reason.to_owned(),
            message: want.message.clone(),
            last_transition_time,
        });
    }
    merged.sort_by(|a, b| a.type_.cmp(&b.type_));
    (merged, transitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, at: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Some(at.into()),
        }
    }

    #[test]
    fn the_create_pending_guard_stops_with_a_reason_of_its_own() {
        use strata_provider::StopReason;
        let guard = Desired::stopped(StopReason::CreateIncomplete);
        assert_eq!(
            (guard.type_, guard.status, guard.reason),
            (TYPE_SYNCED, false, "ExternalCreatePending")
        );
        assert!(guard.message.contains("strata.dev/external-create-pending"));
        let refused = Desired::stopped(StopReason::AbsentAndCreateForbidden);
        assert_eq!(refused.reason, REASON_RECONCILE_ERROR);
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time_and_report_no_transition() {
        let existing = [
            condition("Ready", "True", REASON_AVAILABLE, "t1"),
            condition("Synced", "True", REASON_RECONCILE_SUCCESS, "t1"),
        ];
        let (merged, transitions) = merge(
            &existing,
            &[Desired::ready(true, REASON_AVAILABLE), Desired::synced()],
            "t2",
        );
        assert_eq!(merged, existing.to_vec());
        assert!(transitions.is_empty());
    }

    #[test]
    fn a_status_change_moves_the_transition_time_and_is_reported() {
        let existing = [condition("Ready", "False", REASON_CREATING, "t1")];
        let (merged, transitions) =
            merge(&existing, &[Desired::ready(true, REASON_AVAILABLE)], "t2");
        assert_eq!(
            merged,
            vec![condition("Ready", "True", REASON_AVAILABLE, "t2")]
        );
        assert_eq!(transitions, vec![Desired::ready(true, REASON_AVAILABLE)]);
    }

    #[test]
    fn a_reason_change_alone_keeps_the_time_but_is_reported() {
        let existing = [condition("Ready", "False", REASON_CREATING, "t1")];
        let (merged, transitions) =
            merge(&existing, &[Desired::ready(false, REASON_DELETING)], "t2");
        assert_eq!(merged[0].last_transition_time.as_deref(), Some("t1"));
        assert_eq!(transitions.len(), 1);
    }

    #[test]
    fn not_ready_reads_as_creating_until_the_resource_was_ever_ready() {
        assert_eq!(not_ready_reason(&[]), REASON_CREATING);
        assert_eq!(
            not_ready_reason(&[condition("Ready", "True", REASON_AVAILABLE, "t")]),
            REASON_UNAVAILABLE
        );
    }
}
