//! `strata trace`: the tree below a claim or XR (claim → XR → composed resources, recursively
//! through nested XRs), with each object's `Synced` and `Ready` conditions. Reading only.
//!
//! [`trace`] observes through the API once, [`watch`] again whenever an object in the tree
//! changes; [`render_tree`] and [`render_dot`] are pure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use futures_util::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use strata_core::compile::{CompiledComposition, CompiledReadinessCheck};
use strata_core::model::CompositionRevision;
use strata_core::readiness;

use crate::error::{Error, Result};
use crate::inventory::ResourceRef;
use crate::kinds::Kinds;
use crate::shape::Shape;

/// Nested XRs deeper than this are not followed (a guard against reference loops).
const MAX_DEPTH: usize = 16;

/// One object in the trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceNode {
    /// The object's `apiVersion`.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The object's namespace; `None` for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Composition template this object was rendered from, for composed objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `False` when the object does not exist (a dangling reference).
    pub exists: bool,
    /// The status of its `Synced` condition (`True`, `False`, `Unknown`); `None` without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced: Option<String>,
    /// The status of its `Ready` condition; for a composed object, whether its Composition's
    /// readiness checks pass (`True`/`False`). `None` when neither says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// The message of the first non-True condition among Synced and Ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// An XR's last function pipeline results that are not Normal (`status.functionResults`):
    /// `step: Severity: message`, newest last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<String>,
    /// A claim's XR, or what an XR composed (in `spec.resourceRefs` order); nested XRs are
    /// followed 16 levels deep.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TraceNode>,
}

/// Finds `kind` (kind, plural, singular or short name, any case) through discovery.
async fn find_kind(client: &Client, kind: &str) -> Result<(ApiResource, bool)> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| Error::kube("discovering", "the API's kinds", e))?;
    let wanted = kind.to_ascii_lowercase();
    let (group_wanted, name_wanted) = match wanted.split_once('.') {
        Some((n, g)) => (Some(g.to_owned()), n.to_owned()),
        None => (None, wanted.clone()),
    };
    for group in discovery.groups() {
        if group_wanted.as_deref().is_some_and(|g| g != group.name()) {
            continue;
        }
        for (ar, caps) in group.recommended_resources() {
            if ar.kind.to_ascii_lowercase() == name_wanted || ar.plural == name_wanted {
                return Ok((ar, caps.scope == Scope::Namespaced));
            }
        }
    }
    Err(Error::invalid(
        format!("kind {kind}"),
        "the API server serves no such kind",
    ))
}

/// The root object `kind/name` names (namespace `ns` for namespaced kinds).
async fn root_ref(
    client: &Client,
    kind: &str,
    name: &str,
    ns: Option<&str>,
) -> Result<ResourceRef> {
    let (ar, namespaced) = find_kind(client, kind).await?;
    Ok(ResourceRef {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
        name: name.to_owned(),
        namespace: if namespaced {
            Some(ns.unwrap_or("default").to_owned())
        } else {
            None
        },
    })
}

/// The tree below `root`; `None` when the root object does not exist.
async fn tree(kinds: &Kinds, root: &ResourceRef) -> Result<Option<TraceNode>> {
    match observe(kinds, root).await? {
        None => Ok(None),
        Some(observed) => Ok(Some(Box::pin(node(kinds, root, Some(observed), 0)).await?)),
    }
}

/// Traces `kind/name` (namespace `ns` for namespaced kinds).
pub async fn trace(client: &Client, kind: &str, name: &str, ns: Option<&str>) -> Result<TraceNode> {
    let r = root_ref(client, kind, name, ns).await?;
    let kinds = Kinds::new(client.clone());
    tree(&kinds, &r)
        .await?
        .ok_or_else(|| Error::invalid(r.display(), "not found"))
}

/// How long a burst of changes is gathered before the tree is traced again.
const WATCH_SETTLE: Duration = Duration::from_millis(200);

/// A live trace: traces `kind/name`, hands the tree to `emit`, and traces again whenever an
/// object in the tree changes (watching every kind in it), handing over each tree that differs
/// from the last. Returns when the root object is gone; fails if it does not exist at the start.
pub async fn watch(
    client: &Client,
    kind: &str,
    name: &str,
    ns: Option<&str>,
    mut emit: impl FnMut(&TraceNode),
) -> Result<()> {
    let root = root_ref(client, kind, name, ns).await?;
    let kinds = Kinds::new(client.clone());
    let mut last = tree(&kinds, &root)
        .await?
        .ok_or_else(|| Error::invalid(root.display(), "not found"))?;
    emit(&last);
    let (changed, mut changes) = mpsc::unbounded_channel::<ObjectKey>();
    let mut watches = Watches::default();
    loop {
        for r in refs_in(&last) {
            watches.ensure(&kinds, &r, &changed).await?;
        }
        let members: HashSet<ObjectKey> = refs_in(&last).iter().map(ObjectKey::of).collect();
        loop {
            let Some(key) = changes.recv().await else {
                return Ok(());
            };
            if members.contains(&key) {
                break;
            }
        }
        tokio::time::sleep(WATCH_SETTLE).await;
        while changes.try_recv().is_ok() {}
        match tree(&kinds, &root).await? {
            None => return Ok(()),
            Some(next) if next != last => {
                emit(&next);
                last = next;
            }
            Some(_) => {}
        }
    }
}

/// Identifies an object across kinds: apiVersion, kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjectKey(String, String, Option<String>, String);

impl ObjectKey {
    fn of(r: &ResourceRef) -> Self {
        Self(
            r.api_version.clone(),
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
        )
    }
}

/// Every object a tree names, itself included.
fn refs_in(n: &TraceNode) -> Vec<ResourceRef> {
    let mut out = vec![ResourceRef {
        api_version: n.api_version.clone(),
        kind: n.kind.clone(),
        name: n.name.clone(),
        namespace: n.namespace.clone(),
    }];
    for c in &n.children {
        out.extend(refs_in(c));
    }
    out
}

/// One metadata watch per kind seen in the tree, each reporting the objects it sees change;
/// stopped when dropped.
#[derive(Default)]
struct Watches(HashMap<(String, String), tokio::task::JoinHandle<()>>);

impl Watches {
    async fn ensure(
        &mut self,
        kinds: &Kinds,
        r: &ResourceRef,
        changed: &mpsc::UnboundedSender<ObjectKey>,
    ) -> Result<()> {
        let key = (r.api_version.clone(), r.kind.clone());
        if self.0.contains_key(&key) {
            return Ok(());
        }
        let kind = kinds.resolve(&r.api_version, &r.kind).await?;
        // Metadata only: the tree is traced again from the API, the watch only says when.
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(kinds.client(), &kind.resource);
        let (api_version, kind_name) = key.clone();
        let changed = changed.clone();
        let task = tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .touched_objects();
            futures_util::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let Ok(object) = event else { continue };
                let key = ObjectKey(
                    api_version.clone(),
                    kind_name.clone(),
                    object.metadata.namespace.clone(),
                    object.metadata.name.clone().unwrap_or_default(),
                );
                if changed.send(key).is_err() {
                    return;
                }
            }
        });
        self.0.insert(key, task);
        Ok(())
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

async fn observe(kinds: &Kinds, r: &ResourceRef) -> Result<Option<Value>> {
    let (api, _): (Api<DynamicObject>, _) = kinds.api_for(r).await?;
    crate::shared::get_json(&api, &r.name)
        .await
        .map_err(|e| Error::kube("reading", r.display(), e))
}

async fn node(
    kinds: &Kinds,
    r: &ResourceRef,
    observed: Option<Value>,
    depth: usize,
) -> Result<TraceNode> {
    let mut n = summarize(r, observed.as_ref());
    let Some(obj) = observed else { return Ok(n) };
    if depth >= MAX_DEPTH {
        return Ok(n);
    }
    let mut refs = Vec::new();
    // A claim points at its XR.
    if let Some(x) = obj.pointer("/spec/resourceRef") {
        let s = |k: &str| x.get(k).and_then(Value::as_str).map(str::to_owned);
        if let (Some(api_version), Some(kind), Some(name)) = (s("apiVersion"), s("kind"), s("name"))
        {
            refs.push(ResourceRef {
                api_version,
                kind,
                name,
                namespace: None,
            });
        }
    }
    // An XR records its composed resources; their readiness is what its Composition's checks
    // decide (a ConfigMap has no Ready condition, yet its checks may pass).
    let composed = ResourceRef::list_of(&obj);
    let checks = if composed.is_empty() {
        BTreeMap::new()
    } else {
        readiness_checks(kinds, &obj).await
    };
    refs.extend(composed);
    for child in refs {
        let observed = observe(kinds, &child).await?;
        let mut c = Box::pin(node(kinds, &child, observed.clone(), depth + 1)).await?;
        if let (Some(o), Some(template)) = (&observed, c.resource.as_ref())
            && let Some(checks) = checks.get(template)
        {
            let ready = readiness::evaluate(checks, o).is_ready();
            c.ready = Some(if ready { "True" } else { "False" }.to_owned());
        }
        n.children.push(c);
    }
    Ok(n)
}

/// The readiness checks of each template of the Composition revision an XR renders with, by
/// template name; empty when the revision cannot be read or compiled (a trace only reads, and
/// then shows the Ready condition alone).
async fn readiness_checks(
    kinds: &Kinds,
    xr: &Value,
) -> BTreeMap<String, Vec<CompiledReadinessCheck>> {
    let Some(name) = xr
        .pointer(&Shape::observed(xr).pointer("compositionRevisionRef/name"))
        .and_then(Value::as_str)
    else {
        return BTreeMap::new();
    };
    let api: Api<CompositionRevision> = Api::all(kinds.client());
    let Ok(Some(revision)) = api.get_opt(name).await else {
        return BTreeMap::new();
    };
    match CompiledComposition::compile(&revision.spec.composition) {
        Ok(compiled) => compiled
            .resources
            .into_iter()
            .map(|r| (r.name, r.readiness_checks))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// The node for one object, without children. Pure.
pub(crate) fn summarize(r: &ResourceRef, observed: Option<&Value>) -> TraceNode {
    let condition = |kind: &str| -> Option<&Value> {
        observed?
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    };
    let status = |kind: &str| {
        condition(kind)
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = ["Synced", "Ready"]
        .into_iter()
        .filter_map(condition)
        .find(|c| c.get("status").and_then(Value::as_str) != Some("True"))
        .and_then(|c| c.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    TraceNode {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        name: r.name.clone(),
        namespace: r.namespace.clone(),
        resource: observed
            .and_then(|o| o.pointer("/metadata/annotations"))
            .and_then(|a| a.get(strata_core::wire::ANNOTATION_RESOURCE_NAME))
            .and_then(Value::as_str)
            .map(str::to_owned),
        exists: observed.is_some(),
        synced: status("Synced"),
        ready: status("Ready"),
        message,
        results: observed
            .and_then(|o| o.pointer("/status/functionResults"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("severity").and_then(Value::as_str) != Some("Normal"))
            .map(|r| {
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
                format!("{}: {}: {}", s("step"), s("severity"), s("message"))
            })
            .collect(),
        children: Vec::new(),
    }
}

fn label(n: &TraceNode) -> String {
    let name = match &n.namespace {
        Some(ns) => format!("{}/{ns}/{}", n.kind, n.name),
        None => format!("{}/{}", n.kind, n.name),
    };
    match &n.resource {
        Some(r) => format!("{name} ({r})"),
        None => name,
    }
}

fn state(n: &TraceNode) -> String {
    if !n.exists {
        return "NOT FOUND".to_owned();
    }
    let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    format!("synced={} ready={}", s(&n.synced), s(&n.ready))
}

/// The tree as text, one object per line.
pub fn render_tree(root: &TraceNode) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}{}", label(root), state(root), suffix(root));
    write_results(&mut out, root, "    ");
    write_children(&mut out, root, "");
    out
}

/// A node's function results, one per line under it.
fn write_results(out: &mut String, n: &TraceNode, prefix: &str) {
    for r in &n.results {
        let _ = writeln!(out, "{prefix}! {r}");
    }
}

fn suffix(n: &TraceNode) -> String {
    n.message
        .as_ref()
        .map(|m| format!("  {m}"))
        .unwrap_or_default()
}

fn write_children(out: &mut String, n: &TraceNode, prefix: &str) {
    for (i, c) in n.children.iter().enumerate() {
        let last = i + 1 == n.children.len();
        let _ = writeln!(
            out,
            "{prefix}{}{}  {}{}",
            if last { "└── " } else { "├── " },
            label(c),
            state(c),
            suffix(c)
        );
        write_results(
            out,
            c,
            &format!("{prefix}{}", if last { "        " } else { "│       " }),
        );
        write_children(
            out,
            c,
            &format!("{prefix}{}", if last { "    " } else { "│   " }),
        );
    }
}

/// The tree as a Graphviz digraph.
pub fn render_dot(root: &TraceNode) -> String {
    let mut out = String::from("digraph trace {\n  rankdir=LR;\n  node [shape=box];\n");
    let mut next = 0usize;
    dot_node(&mut out, root, &mut next);
    out.push_str("}\n");
    out
}

fn dot_node(out: &mut String, n: &TraceNode, next: &mut usize) -> usize {
    let id = *next;
    *next += 1;
    let color = match (n.exists, n.ready.as_deref()) {
        (false, _) => "red",
        (true, Some("True")) => "darkgreen",
        _ => "orange",
    };
    let text = format!("{}\\n{}", label(n), state(n)).replace('"', "\\\"");
    let _ = writeln!(out, "  n{id} [label=\"{text}\", color={color}];");
    for c in &n.children {
        let child = dot_node(out, c, next);
        let _ = writeln!(out, "  n{id} -> n{child};");
    }
    id
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn r(kind: &str, name: &str) -> ResourceRef {
        ResourceRef {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            namespace: None,
        }
    }

    fn sample() -> TraceNode {
        let xr = json!({"status": {"conditions": [
            {"type": "Synced", "status": "True"},
            {"type": "Ready", "status": "False", "message": "Unready resources: b"},
        ]}});
        let a = json!({"metadata": {"annotations": {"strata.dev/composition-resource-name": "a"}}});
        let mut root = summarize(&r("XDatabase", "db"), Some(&xr));
        root.children
            .push(summarize(&r("ConfigMap", "db-a"), Some(&a)));
        root.children.push(summarize(&r("ConfigMap", "db-b"), None));
        root
    }

    #[test]
    fn an_xrs_warning_and_fatal_function_results_show_under_it() {
        let xr = json!({"status": {"functionResults": [
            {"step": "compose", "severity": "Normal", "message": "ok"},
            {"step": "compose", "severity": "Warning", "reason": "Slow", "message": "db is slow"},
        ]}});
        let mut root = summarize(&r("XDatabase", "db"), Some(&xr));
        assert_eq!(
            root.results,
            vec!["compose: Warning: db is slow".to_owned()]
        );
        root.children
            .push(summarize(&r("XDatabase", "child"), Some(&xr)));
        let text = render_tree(&root);
        assert_eq!(
            text.lines().collect::<Vec<_>>()[1..],
            [
                "    ! compose: Warning: db is slow",
                "└── XDatabase/child  synced=- ready=-",
                "        ! compose: Warning: db is slow",
            ]
        );
    }

    #[test]
    fn a_summary_names_the_first_unhealthy_conditions_message() {
        let n = sample();
        assert_eq!(n.synced.as_deref(), Some("True"));
        assert_eq!(n.ready.as_deref(), Some("False"));
        assert_eq!(n.message.as_deref(), Some("Unready resources: b"));
    }

    #[test]
    fn the_tree_shows_templates_states_and_dangling_references() {
        let text = render_tree(&sample());
        assert_eq!(
            text,
            "XDatabase/db  synced=True ready=False  Unready resources: b\n\
             ├── ConfigMap/db-a (a)  synced=- ready=-\n\
             └── ConfigMap/db-b  NOT FOUND\n"
        );
    }

    #[test]
    fn the_dot_graph_links_parents_to_children() {
        let dot = render_dot(&sample());
        assert!(
            dot.contains("n0 -> n1;") && dot.contains("n0 -> n2;"),
            "{dot}"
        );
        assert!(dot.contains("color=red"), "{dot}");
    }
}
