//! The XR's inventory of composed resources (`spec.resourceRefs`) and the pure decisions made
//! from it: what to record before applying, what to prune after a clean pass, and which
//! deletion wave to work on.
//!
//! The inventory is the source of truth for pruning and deletion, never a re-render: a
//! Composition that changed or vanished cannot make Strata forget what it created.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use strata_schema::pointer::Pointer;

/// A reference to one composed resource, as recorded in `spec.resourceRefs`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ResourceRef {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
}

impl ResourceRef {
    /// Reads a reference from a composed object (desired or observed).
    pub(crate) fn of(object: &Value) -> Option<Self> {
        let s = |p: &str| object.at(p).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            api_version: s("/apiVersion")?,
            kind: s("/kind")?,
            name: s("/metadata/name")?,
            namespace: s("/metadata/namespace"),
        })
    }

    /// Reads the recorded inventory of an XR (`spec.resourceRefs`, or `spec.crossplane.resourceRefs`
    /// in the v2 shape); malformed entries are skipped. A namespaced XR
    /// records references without a namespace (its CRD has no such field): they are in its own.
    pub(crate) fn list_of(xr: &Value) -> Vec<Self> {
        let own = xr.at("/metadata/namespace").and_then(Value::as_str);
        let mut refs = Self::recorded(xr);
        for r in &mut refs {
            if r.namespace.is_none() {
                r.namespace = own.map(str::to_owned);
            }
        }
        refs
    }

    /// The inventory as `spec.resourceRefs` of an XR in `xr_namespace` (namespaced XRs record
    /// no namespace).
    pub(crate) fn to_inventory(refs: &[Self], xr_namespace: Option<&str>) -> Vec<Value> {
        refs.iter()
            .map(|r| {
                let mut v = r.to_value();
                if xr_namespace.is_some()
                    && let Some(o) = v.as_object_mut()
                {
                    o.remove("namespace");
                }
                v
            })
            .collect()
    }

    fn recorded(xr: &Value) -> Vec<Self> {
        xr.at(&crate::shape::Shape::observed(xr).pointer("resourceRefs"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
                Some(Self {
                    api_version: s("apiVersion")?,
                    kind: s("kind")?,
                    name: s("name")?,
                    namespace: s("namespace"),
                })
            })
            .collect()
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut v = json!({"apiVersion": self.api_version, "kind": self.kind, "name": self.name});
        if let (Some(ns), Some(o)) = (&self.namespace, v.as_object_mut()) {
            o.insert("namespace".into(), Value::String(ns.clone()));
        }
        v
    }

    /// `kind/name` or `kind/namespace/name`, for messages.
    pub(crate) fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {}/{}", self.kind, ns, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// The inventory to record before applying: every desired resource in apply order, then the
/// recorded ones that are no longer desired (kept until pruned), so a crash mid-pass never
/// leaves an object the XR does not know about.
pub(crate) fn before_apply(recorded: &[ResourceRef], desired: &[ResourceRef]) -> Vec<ResourceRef> {
    let mut out: Vec<ResourceRef> = Vec::with_capacity(recorded.len() + desired.len());
    for r in desired.iter().chain(recorded) {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

/// What to do with recorded resources that left the desired set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Prune {
    /// Some apply of this pass failed (or the render did not complete): keep everything.
    Hold { stale: Vec<ResourceRef> },
    /// Delete these, then record `keep` as the inventory.
    Delete {
        stale: Vec<ResourceRef>,
        keep: Vec<ResourceRef>,
    },
}

/// Decides pruning. `all_applied` is true only when every apply of the pass succeeded.
pub(crate) fn prune(recorded: &[ResourceRef], desired: &[ResourceRef], all_applied: bool) -> Prune {
    let wanted: BTreeSet<&ResourceRef> = desired.iter().collect();
    let stale: Vec<ResourceRef> = recorded
        .iter()
        .filter(|r| !wanted.contains(r))
        .cloned()
        .collect();
    if !all_applied {
        return Prune::Hold { stale };
    }
    Prune::Delete {
        stale,
        keep: desired.to_vec(),
    }
}

/// One recorded composed resource during deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Observation {
    Absent,
    /// Present; `deleting` when it already has a deletionTimestamp.
    Present {
        template: Option<String>,
        deleting: bool,
    },
}

/// The next step of an ordered deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeletionStep {
    /// Issue deletes for these (the current wave's members not yet deleting).
    Delete { wave: usize, refs: Vec<ResourceRef> },
    /// The current wave is deleting; wait until it is gone.
    Wait {
        wave: usize,
        remaining: Vec<ResourceRef>,
    },
    /// Everything recorded is gone: remove the finalizer.
    Done,
}

/// Decides the next deletion step. `waves` are template names, first wave first (dependents
/// before dependencies); `None` means the Composition is gone and everything goes at once.
/// Resources whose template is not in any wave go in the first wave.
pub(crate) fn deletion_step(
    waves: Option<&[Vec<String>]>,
    observed: &[(ResourceRef, Observation)],
) -> DeletionStep {
    let wave_of = |template: &Option<String>| -> usize {
        match (waves, template) {
            (Some(ws), Some(t)) => ws.iter().position(|w| w.contains(t)).unwrap_or(0),
            _ => 0,
        }
    };
    let present: Vec<(usize, &ResourceRef, bool)> = observed
        .iter()
        .filter_map(|(r, o)| match o {
            Observation::Absent => None,
            Observation::Present { template, deleting } => Some((wave_of(template), r, *deleting)),
        })
        .collect();
    let Some(current) = present.iter().map(|(w, _, _)| *w).min() else {
        return DeletionStep::Done;
    };
    let in_wave: Vec<&(usize, &ResourceRef, bool)> =
        present.iter().filter(|(w, _, _)| *w == current).collect();
    let to_delete: Vec<ResourceRef> = in_wave
        .iter()
        .filter(|(_, _, d)| !d)
        .map(|(_, r, _)| (*r).clone())
        .collect();
    if to_delete.is_empty() {
        return DeletionStep::Wait {
            wave: current,
            remaining: in_wave.iter().map(|(_, r, _)| (*r).clone()).collect(),
        };
    }
    DeletionStep::Delete {
        wave: current,
        refs: to_delete,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn r(name: &str) -> ResourceRef {
        ResourceRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            namespace: Some("ns".into()),
        }
    }

    fn present(t: &str) -> Observation {
        Observation::Present {
            template: Some(t.into()),
            deleting: false,
        }
    }

    fn deleting(t: &str) -> Observation {
        Observation::Present {
            template: Some(t.into()),
            deleting: true,
        }
    }

    fn waves() -> Vec<Vec<String>> {
        vec![vec!["c".into()], vec!["b".into()], vec!["a".into()]]
    }

    #[test]
    fn the_inventory_records_new_resources_before_they_are_applied_and_keeps_stale_ones() {
        let got = before_apply(&[r("x-a"), r("x-old")], &[r("x-a"), r("x-b")]);
        assert_eq!(got, vec![r("x-a"), r("x-b"), r("x-old")]);
    }

    #[test]
    fn references_round_trip_through_the_xr_spec() {
        let xr = json!({"spec": {"resourceRefs": [r("x-a").to_value(), {"kind": "broken"}]}});
        assert_eq!(ResourceRef::list_of(&xr), vec![r("x-a")]);
        let v2 = json!({"spec": {"crossplane": {"resourceRefs": [r("x-a").to_value()]}}});
        assert_eq!(
            ResourceRef::list_of(&v2),
            vec![r("x-a")],
            "the v2 shape records under spec.crossplane"
        );
    }

    #[test]
    fn a_namespaced_xrs_references_live_in_its_namespace_and_are_recorded_without_one() {
        let xr = json!({"metadata": {"namespace": "ns"}, "spec": {"resourceRefs": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x-a"}]}});
        let refs = ResourceRef::list_of(&xr);
        assert_eq!(refs, vec![r("x-a")]);
        assert_eq!(
            ResourceRef::to_inventory(&refs, Some("ns")),
            vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x-a"})]
        );
        assert_eq!(
            ResourceRef::to_inventory(&refs, None),
            vec![r("x-a").to_value()]
        );
    }

    #[test]
    fn a_failed_apply_holds_every_stale_resource() {
        let got = prune(&[r("a"), r("old")], &[r("a")], false);
        assert_eq!(
            got,
            Prune::Hold {
                stale: vec![r("old")]
            }
        );
    }

    #[test]
    fn a_clean_pass_prunes_exactly_what_left_the_desired_set() {
        let got = prune(&[r("a"), r("old")], &[r("a"), r("new")], true);
        assert_eq!(
            got,
            Prune::Delete {
                stale: vec![r("old")],
                keep: vec![r("a"), r("new")]
            }
        );
    }

    #[test]
    fn a_clean_pass_with_nothing_stale_prunes_nothing() {
        assert_eq!(
            prune(&[r("a")], &[r("a")], true),
            Prune::Delete {
                stale: vec![],
                keep: vec![r("a")]
            }
        );
    }

    #[test]
    fn deletion_starts_with_the_first_wave_only() {
        let obs = vec![
            (r("x-a"), present("a")),
            (r("x-b"), present("b")),
            (r("x-c"), present("c")),
        ];
        assert_eq!(
            deletion_step(Some(&waves()), &obs),
            DeletionStep::Delete {
                wave: 0,
                refs: vec![r("x-c")]
            }
        );
    }

    #[test]
    fn deletion_waits_while_the_current_wave_is_still_terminating() {
        let obs = vec![
            (r("x-a"), present("a")),
            (r("x-b"), present("b")),
            (r("x-c"), deleting("c")),
        ];
        assert_eq!(
            deletion_step(Some(&waves()), &obs),
            DeletionStep::Wait {
                wave: 0,
                remaining: vec![r("x-c")]
            }
        );
    }

    #[test]
    fn deletion_moves_on_once_a_wave_is_gone() {
        let obs = vec![
            (r("x-a"), present("a")),
            (r("x-b"), present("b")),
            (r("x-c"), Observation::Absent),
        ];
        assert_eq!(
            deletion_step(Some(&waves()), &obs),
            DeletionStep::Delete {
                wave: 1,
                refs: vec![r("x-b")]
            }
        );
    }

    #[test]
    fn deletion_is_done_when_everything_recorded_is_absent() {
        let obs = vec![(r("x-a"), Observation::Absent)];
        assert_eq!(deletion_step(Some(&waves()), &obs), DeletionStep::Done);
        assert_eq!(deletion_step(Some(&waves()), &[]), DeletionStep::Done);
    }

    #[test]
    fn without_a_composition_everything_is_deleted_at_once() {
        let obs = vec![(r("x-a"), present("a")), (r("x-c"), present("c"))];
        assert_eq!(
            deletion_step(None, &obs),
            DeletionStep::Delete {
                wave: 0,
                refs: vec![r("x-a"), r("x-c")]
            }
        );
    }

    #[test]
    fn resources_of_unknown_templates_go_first() {
        let obs = vec![
            (r("x-a"), present("a")),
            (r("x-gone"), present("removed-template")),
        ];
        assert_eq!(
            deletion_step(Some(&waves()), &obs),
            DeletionStep::Delete {
                wave: 0,
                refs: vec![r("x-gone")]
            }
        );
    }
}
