//! The controllers end to end, in-process (moved here from the controllers crate so every
//! integration test links into one binary): the embedded control plane (strata-apiserver) on
//! 127.0.0.1:0, the controllers on a client from its kubeconfig, and a claim composing a chain of
//! ConfigMaps and a Secret.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use strata_controllers::Settings;
use strata_controllers::kinds::Kinds;
use strata_test_support::{TempDir, free_port};

struct Harness {
    client: kube::Client,
    /// The controllers' own identity (`system:strata:controllers`), as `strata up` runs them.
    controllers_client: kube::Client,
    kinds: Kinds,
    _dir: TempDir,
    _server: strata_apiserver::Server,
    controllers: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.controllers.abort();
    }
}

async fn start(tag: &str, resync: Duration) -> Harness {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = TempDir::new(&format!("controllers-{tag}"));
    let server = strata_apiserver::Server::start(strata_apiserver::ServerConfig::new(
        dir.0.join("data"),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .unwrap();
    let client = strata_controllers::client(Some(server.kubeconfig_path()))
        .await
        .unwrap();
    // The controllers run as `strata up` runs them: their own least-privilege identity.
    let c = strata_controllers::client_from_kubeconfig_yaml(server.controllers_kubeconfig())
        .await
        .unwrap();
    let settings = Settings {
        resync,
        aggregate_to_controllers: true,
        ..Default::default()
    };
    let controllers_client = c.clone();
    let controllers = tokio::spawn(async move {
        if let Err(e) = strata_controllers::run(c, settings, std::future::pending()).await {
            panic!("controllers failed: {e}");
        }
    });
    let h = Harness {
        kinds: Kinds::new(client.clone()),
        controllers_client,
        client,
        _dir: dir,
        _server: server,
        controllers,
    };
    for ns in ["default", "team"] {
        let _ = h
            .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .await;
    }
    h
}

impl Harness {
    async fn api(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.kinds.resolve(api_version, kind).await {
                Ok(k) => {
                    return match (ns, k.namespaced) {
                        (Some(ns), true) => {
                            Api::namespaced_with(self.client.clone(), ns, &k.resource)
                        }
                        _ => Api::all_with(self.client.clone(), &k.resource),
                    };
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "{api_version}/{kind} never served: {e}"
                    );
                    self.kinds.forget(api_version, kind);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn apply(&self, object: Value) -> Result<DynamicObject, kube::Error> {
        let s = |p: &str| object.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let api = self
            .api(
                &s("/apiVersion").unwrap(),
                &s("/kind").unwrap(),
                s("/metadata/namespace").as_deref(),
            )
            .await;
        api.patch(
            &s("/metadata/name").unwrap(),
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&object),
        )
        .await
    }

    async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        strata_test_support::eventually_async(what, timeout, check).await
    }
}

fn condition<'a>(obj: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    obj.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn xrd() -> Value {
    json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "CompositeResourceDefinition",
        "metadata": {"name": "xdatabases.example.org"},
        "spec": {
            "group": "example.org",
            "names": {"kind": "XDatabase", "plural": "xdatabases"},
            "claimNames": {"kind": "Database", "plural": "databases"},
            "versions": [{
                "name": "v1", "served": true, "referenceable": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "string"}}},
                    "status": {"type": "object", "properties": {"address": {"type": "string"}}},
                }}},
            }],
        },
    })
}

/// a → b → c (FromResourceFieldPath), d dependsOn c; every ConfigMap goes to the claim's namespace.
fn composition(name: &str, cycle: bool) -> Value {
    let ns_patch = json!({"type": "FromCompositeFieldPath", "fromFieldPath": "metadata.labels[strata.dev/claim-namespace]", "toFieldPath": "metadata.namespace"});
    let cm = |extra: Value| {
        let mut base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}, "data": {}});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    };
    let mut a_patches = vec![
        ns_patch.clone(),
        json!({"fromFieldPath": "spec.size", "toFieldPath": "data.size"}),
    ];
    if cycle {
        a_patches.push(json!({"type": "FromResourceFieldPath", "fromResource": "c", "fromFieldPath": "data.fromB", "toFieldPath": "data.fromC"}));
    }
    json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": name},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XDatabase"},
            "writeConnectionSecretsToNamespace": "default",
            "resources": [
                {"name": "a", "base": cm(json!({})), "patches": a_patches,
                 "readinessChecks": [{"type": "NonEmpty", "fieldPath": "data.size"}],
                 "connectionDetails": [{"name": "size", "type": "FromFieldPath", "fromFieldPath": "data.size"}]},
                {"name": "b", "base": cm(json!({})), "patches": [ns_patch.clone(),
                    {"type": "FromResourceFieldPath", "fromResource": "a", "fromFieldPath": "data.size", "toFieldPath": "data.fromA"},
                    {"type": "ToCompositeFieldPath", "fromFieldPath": "metadata.name", "toFieldPath": "status.address"}],
                 "readinessChecks": [{"type": "NonEmpty", "fieldPath": "data.fromA"}]},
                {"name": "c", "base": cm(json!({})), "patches": [ns_patch.clone(),
                    {"type": "FromResourceFieldPath", "fromResource": "b", "fromFieldPath": "data.fromA", "toFieldPath": "data.fromB"}],
                 "readinessChecks": [{"type": "NonEmpty", "fieldPath": "data.fromB"}]},
                {"name": "d", "dependsOn": ["c"],
                 "base": {"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "default"}, "data": {"token": "aGVsbG8="}},
                 "patches": [ns_patch],
                 "readinessChecks": [{"type": "None"}],
                 "connectionDetails": [{"name": "user", "type": "FromValue", "value": "admin"}]},
            ],
        },
    })
}

/// Records the order in which composed objects appear and disappear.
#[derive(Default, Clone)]
struct Order(Arc<Mutex<(Vec<String>, Vec<String>)>>);

impl Order {
    fn watch(&self, api: Api<DynamicObject>) -> tokio::task::JoinHandle<()> {
        let order = self.clone();
        tokio::spawn(async move {
            let mut seen = BTreeMap::new();
            let stream = watcher(
                api,
                watcher::Config::default().labels("strata.dev/composite"),
            );
            futures_util::pin_mut!(stream);
            while let Some(Ok(ev)) = stream.next().await {
                let mut o = order.0.lock().unwrap();
                match ev {
                    watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                        let t = obj
                            .annotations()
                            .get("strata.dev/composition-resource-name")
                            .cloned()
                            .unwrap_or_default();
                        if seen.insert(obj.name_any(), t.clone()).is_none() {
                            o.0.push(t);
                        }
                    }
                    watcher::Event::Delete(obj) => {
                        let t = obj
                            .annotations()
                            .get("strata.dev/composition-resource-name")
                            .cloned()
                            .unwrap_or_default();
                        o.1.push(t);
                    }
                    _ => {}
                }
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_composes_in_graph_order_converges_without_writes_and_deletes_in_reverse() {
    let h = start("claim", Duration::from_secs(2)).await;
    h.apply(xrd()).await.unwrap();
    h.apply(composition("chain", false)).await.unwrap();
    let xrds = h
        .api(
            "apiextensions.strata.dev/v1alpha1",
            "CompositeResourceDefinition",
            None,
        )
        .await;
    h.wait_for(
        "the XRD to be established and offered",
        Duration::from_secs(30),
        async || {
            let x = xrds.get("xdatabases.example.org").await.ok()?;
            (condition(&x, "Established")?["status"] == "True"
                && condition(&x, "Offered")?["status"] == "True")
                .then_some(())
        },
    )
    .await;

    let order = Order::default();
    let cms = order.watch(h.api("v1", "ConfigMap", None).await);
    let secrets_order = Order::default();
    let secrets_watch = secrets_order.watch(h.api("v1", "Secret", None).await);

    let claims = h.api("example.org/v1", "Database", Some("team")).await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "Database",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"size": "small", "compositionRef": {"name": "chain"}, "writeConnectionSecretToRef": {"name": "db-conn"}, "compositeDeletePolicy": "Foreground"},
    }))
    .await
    .unwrap();
    let claim = h
        .wait_for(
            "the claim to be Ready",
            Duration::from_secs(60),
            async || {
                let c = claims.get("db").await.ok()?;
                (condition(&c, "Ready")?["status"] == "True").then_some(c)
            },
        )
        .await;
    assert_eq!(
        condition(&claim, "Synced").unwrap()["status"],
        "True",
        "{:?}",
        claim.data["status"]
    );
    let xr_name = claim
        .data
        .pointer("/spec/resourceRef/name")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    assert!(xr_name.starts_with("db-"), "{xr_name}");
    assert_eq!(
        claim
            .data
            .pointer("/status/address")
            .and_then(Value::as_str),
        Some(format!("{xr_name}-b").as_str())
    );
    assert_eq!(
        order.0.lock().unwrap().0,
        vec!["a", "b", "c"],
        "ConfigMaps are created in graph order"
    );
    let team_cms = h.api("v1", "ConfigMap", Some("team")).await;
    assert_eq!(
        team_cms.get(&format!("{xr_name}-c")).await.unwrap().data["data"]["fromB"],
        "small"
    );

    let team_secrets = h.api("v1", "Secret", Some("team")).await;
    let conn = h
        .wait_for(
            "the claim's connection secret",
            Duration::from_secs(30),
            async || team_secrets.get("db-conn").await.ok(),
        )
        .await;
    assert_eq!(conn.data["data"]["size"], "c21hbGw=", "{:?}", conn.data);
    assert_eq!(conn.data["data"]["user"], "YWRtaW4=", "{:?}", conn.data);

    // A converged XR gets no writes across several resyncs.
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    let versions = async || {
        let mut v = vec![
            claims.get("db").await.unwrap().resource_version(),
            xrs.get(&xr_name).await.unwrap().resource_version(),
        ];
        for t in ["a", "b", "c"] {
            v.push(
                team_cms
                    .get(&format!("{xr_name}-{t}"))
                    .await
                    .unwrap()
                    .resource_version(),
            );
        }
        v.push(
            team_secrets
                .get(&format!("{xr_name}-d"))
                .await
                .unwrap()
                .resource_version(),
        );
        v.push(
            team_secrets
                .get("db-conn")
                .await
                .unwrap()
                .resource_version(),
        );
        v
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        before,
        versions().await,
        "a resync of a converged XR writes nothing"
    );

    // Updating the claim flows through the chain.
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "Database",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"size": "large", "compositionRef": {"name": "chain"}, "writeConnectionSecretToRef": {"name": "db-conn"}, "compositeDeletePolicy": "Foreground"},
    }))
    .await
    .unwrap();
    h.wait_for(
        "the update to reach c",
        Duration::from_secs(30),
        async || {
            let c = team_cms.get(&format!("{xr_name}-c")).await.ok()?;
            (c.data["data"]["fromB"] == "large").then_some(())
        },
    )
    .await;

    // Deleting the claim deletes everything, dependents first.
    claims.delete("db", &DeleteParams::default()).await.unwrap();
    h.wait_for(
        "everything to be gone",
        Duration::from_secs(60),
        async || {
            let gone = claims.get_opt("db").await.ok()?.is_none()
                && xrs.get_opt(&xr_name).await.ok()?.is_none();
            let cms_left = team_cms
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|c| c.labels().contains_key("strata.dev/composite"))
                .count();
            (gone && cms_left == 0).then_some(())
        },
    )
    .await;
    let deleted_cms = order.0.lock().unwrap().1.clone();
    assert_eq!(
        deleted_cms,
        vec!["c", "b", "a"],
        "ConfigMaps are deleted in reverse graph order"
    );
    assert_eq!(
        secrets_order
            .0
            .lock()
            .unwrap()
            .1
            .first()
            .map(String::as_str),
        Some("d"),
        "d goes before c"
    );
    cms.abort();
    secrets_watch.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composition_with_a_cycle_is_reported_and_nothing_is_applied() {
    let h = start("cycle", Duration::from_secs(3600)).await;
    h.apply(xrd()).await.unwrap();
    h.apply(composition("cyclic", true)).await.unwrap();
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "XDatabase",
        "metadata": {"name": "loop"},
        "spec": {"size": "small", "compositionRef": {"name": "cyclic"}},
    }))
    .await
    .unwrap();
    let xr = h
        .wait_for("Synced=False", Duration::from_secs(30), async || {
            let x = xrs.get("loop").await.ok()?;
            (condition(&x, "Synced")?["status"] == "False").then_some(x)
        })
        .await;
    let message = condition(&xr, "Synced").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("dependency cycle"), "{message}");
    assert!(
        message.contains('a') && message.contains('b') && message.contains('c'),
        "{message}"
    );
    assert!(
        xr.data.pointer("/spec/resourceRefs").is_none(),
        "{:?}",
        xr.data["spec"]
    );
    let cms = h.api("v1", "ConfigMap", None).await;
    let composed = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.labels().contains_key("strata.dev/composite"))
        .count();
    assert_eq!(composed, 0);
    let events = h.api("events.k8s.io/v1", "Event", Some("default")).await;
    h.wait_for(
        "a Warning event naming the XR and the reason",
        Duration::from_secs(10),
        async || {
            events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.data["reason"] == "CompileComposition"
                        && e.data["regarding"]["name"] == "loop"
                        && e.data["type"] == "Warning"
                        && e.data["note"]
                            .as_str()
                            .is_some_and(|n| n.contains("dependency cycle"))
                })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_pausing_and_xrd_deletion_follow_their_policies() {
    let h = start("revisions", Duration::from_secs(3600)).await;
    h.apply(xrd()).await.unwrap();
    h.apply(composition("chain", false)).await.unwrap();
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    for (name, policy) in [("auto", "Automatic"), ("manual", "Manual")] {
        h.apply(json!({
            "apiVersion": "example.org/v1", "kind": "XDatabase",
            "metadata": {"name": name},
            "spec": {"size": "small", "compositionRef": {"name": "chain"}, "compositionUpdatePolicy": policy},
        }))
        .await
        .unwrap();
    }
    let revision_of = async |name: &str| -> Option<String> {
        let x = xrs.get(name).await.ok()?;
        (condition(&x, "Ready")?["status"] == "True").then_some(())?;
        x.data
            .pointer("/spec/compositionRevisionRef/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let first = h
        .wait_for("auto to be Ready", Duration::from_secs(60), async || {
            revision_of("auto").await
        })
        .await;
    assert_eq!(
        h.wait_for("manual to be Ready", Duration::from_secs(60), async || {
            revision_of("manual").await
        })
        .await,
        first
    );

    // A Composition change makes revision 2; Automatic follows it, Manual stays pinned.
    let mut changed = composition("chain", false);
    changed["spec"]["resources"][0]["base"]["data"] = json!({"flavour": "v2"});
    h.apply(changed).await.unwrap();
    let revisions = h
        .api(
            "apiextensions.strata.dev/v1alpha1",
            "CompositionRevision",
            None,
        )
        .await;
    let second = h
        .wait_for("revision 2", Duration::from_secs(30), async || {
            let list = revisions.list(&Default::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|r| r.data["spec"]["revision"] == 2)
                .map(|r| r.name_any())
        })
        .await;
    assert_ne!(first, second);
    let second_rev = revisions.get(&second).await.unwrap();
    assert_eq!(
        second_rev
            .labels()
            .get("strata.dev/composition-name")
            .map(String::as_str),
        Some("chain")
    );
    let cms = h.api("v1", "ConfigMap", Some("default")).await;
    h.wait_for(
        "auto to follow revision 2",
        Duration::from_secs(30),
        async || {
            let cm = cms.get("auto-a").await.ok()?;
            (cm.data["data"]["flavour"] == "v2" && revision_of("auto").await? == second)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        revision_of("manual").await,
        Some(first.clone()),
        "a Manual XR stays on its revision"
    );
    assert!(
        cms.get("manual-a").await.unwrap().data["data"]
            .get("flavour")
            .is_none()
    );

    // A paused XR is left alone.
    xrs.patch("auto", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"annotations": {"strata.dev/paused": "true"}}, "spec": {"size": "huge"}})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cms.get("auto-a").await.unwrap().data["data"]["size"],
        "small",
        "paused XRs are not reconciled"
    );
    xrs.patch(
        "auto",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"strata.dev/paused": null}}})),
    )
    .await
    .unwrap();
    h.wait_for(
        "the unpaused XR to converge",
        Duration::from_secs(30),
        async || (cms.get("auto-a").await.ok()?.data["data"]["size"] == "huge").then_some(()),
    )
    .await;

    // The XRD is not deleted while XRs exist.
    let xrds = h
        .api(
            "apiextensions.strata.dev/v1alpha1",
            "CompositeResourceDefinition",
            None,
        )
        .await;
    xrds.delete("xdatabases.example.org", &DeleteParams::default())
        .await
        .unwrap();
    let x = h
        .wait_for(
            "the XRD to refuse deletion",
            Duration::from_secs(30),
            async || {
                let x = xrds.get("xdatabases.example.org").await.ok()?;
                (condition(&x, "Established")?["reason"] == "Terminating").then_some(x)
            },
        )
        .await;
    assert!(
        condition(&x, "Established").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("still exist")
    );
    for name in ["auto", "manual"] {
        xrs.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let crds = h
        .api("apiextensions.k8s.io/v1", "CustomResourceDefinition", None)
        .await;
    h.wait_for(
        "the XRD and its CRDs to go",
        Duration::from_secs(60),
        async || {
            let xrd_gone = xrds.get_opt("xdatabases.example.org").await.ok()?.is_none();
            let crd_gone = crds.get_opt("xdatabases.example.org").await.ok()?.is_none();
            let claim_crd_gone = crds.get_opt("databases.example.org").await.ok()?.is_none();
            (xrd_gone && crd_gone && claim_crd_gone).then_some(())
        },
    )
    .await;
    let left = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.labels().contains_key("strata.dev/composite"))
        .count();
    assert_eq!(left, 0, "deleting the XRs deleted their composed resources");
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_the_other_takes_over_and_metrics_are_served() {
    let h = start("leader", Duration::from_secs(3600)).await;
    // The harness's own controllers run without election; stop them so only the electing pair works.
    h.controllers.abort();
    let client = strata_controllers::client(Some(h._server.kubeconfig_path()))
        .await
        .unwrap();
    let spawn = |identity: &str, port: u16| {
        let settings = Settings {
            resync: Duration::from_secs(3600),
            metrics_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
            leader_election: Some(strata_controllers::leader::LeaderElection {
                namespace: "default".into(),
                name: "strata-controllers".into(),
                identity: identity.into(),
                lease_duration: Duration::from_secs(3),
            }),
            ..Default::default()
        };
        let c = client.clone();
        tokio::spawn(async move {
            let _ = strata_controllers::run(c, settings, std::future::pending()).await;
        })
    };
    let (port_one, port_two) = (free_port(), free_port());
    let one = spawn("one", port_one);
    let leases = h
        .api("coordination.k8s.io/v1", "Lease", Some("default"))
        .await;
    let holder = async || -> Option<String> {
        leases.get("strata-controllers").await.ok()?.data["spec"]["holderIdentity"]
            .as_str()
            .map(str::to_owned)
    };
    h.wait_for("one to lead", Duration::from_secs(20), async || {
        (holder().await? == "one").then_some(())
    })
    .await;
    let two = spawn("two", port_two);

    h.apply(xrd()).await.unwrap();
    h.apply(composition("cyclic", true)).await.unwrap();
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    h.apply(json!({"apiVersion": "example.org/v1", "kind": "XDatabase", "metadata": {"name": "x1"}, "spec": {"compositionRef": {"name": "cyclic"}}}))
        .await
        .unwrap();
    h.wait_for(
        "the leader to reconcile",
        Duration::from_secs(30),
        async || {
            (condition(&xrs.get("x1").await.ok()?, "Synced")?["status"] == "False").then_some(())
        },
    )
    .await;
    // The counter moves when the reconcile returns, a moment after its status write is seen.
    h.wait_for(
        "the leader's metrics to count the reconcile",
        Duration::from_secs(10),
        async || {
            http_get(
                std::net::SocketAddr::from(([127, 0, 0, 1], port_one)),
                "/metrics",
            )
            .await
            .contains("strata_reconciles_total{controller=\"composite\"}")
            .then_some(())
        },
    )
    .await;
    assert!(
        http_get(
            std::net::SocketAddr::from(([127, 0, 0, 1], port_two)),
            "/healthz"
        )
        .await
        .contains("200 OK")
    );
    assert_eq!(
        holder().await.as_deref(),
        Some("one"),
        "the follower does not take a valid lease"
    );

    one.abort();
    h.wait_for("two to take over", Duration::from_secs(20), async || {
        (holder().await? == "two").then_some(())
    })
    .await;
    h.apply(json!({"apiVersion": "example.org/v1", "kind": "XDatabase", "metadata": {"name": "x2"}, "spec": {"compositionRef": {"name": "cyclic"}}}))
        .await
        .unwrap();
    h.wait_for(
        "the new leader to reconcile",
        Duration::from_secs(30),
        async || {
            (condition(&xrs.get("x2").await.ok()?, "Synced")?["status"] == "False").then_some(())
        },
    )
    .await;
    two.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_configs_feed_environment_patches_and_namespaced_xrs_compose_in_their_namespace()
 {
    let h = start("environment", Duration::from_secs(1)).await;
    h.apply(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "CompositeResourceDefinition",
        "metadata": {"name": "xapps.example.org"},
        "spec": {
            "group": "example.org",
            "scope": "Namespaced",
            "names": {"kind": "XApp", "plural": "xapps"},
            "versions": [{"name": "v1", "served": true, "referenceable": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"env": {"type": "string"}}}}}}}],
        },
    }))
    .await
    .unwrap();
    for (name, env, region) in [("eu", "prod", "eu-west-1"), ("us", "dev", "us-east-1")] {
        h.apply(json!({
            "apiVersion": "apiextensions.strata.dev/v1alpha1", "kind": "EnvironmentConfig",
            "metadata": {"name": name, "labels": {"env": env}},
            "data": {"region": region},
        }))
        .await
        .unwrap();
    }
    h.apply(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": "app"},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
            "environment": {"environmentConfigs": [{"type": "Selector", "selector": {"matchLabels": [
                {"key": "env", "type": "FromCompositeFieldPath", "valueFromFieldPath": "spec.env"}]}}]},
            "resources": [{"name": "settings",
                "base": {"apiVersion": "v1", "kind": "ConfigMap", "data": {}},
                "patches": [{"type": "FromEnvironmentFieldPath", "fromFieldPath": "region", "toFieldPath": "data.region"}],
                "readinessChecks": [{"type": "NonEmpty", "fieldPath": "data.region"}]}],
        },
    }))
    .await
    .unwrap();
    let xrs = h.api("example.org/v1", "XApp", Some("team")).await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "XApp",
        "metadata": {"name": "shop", "namespace": "team"},
        "spec": {"env": "prod", "crossplane": {"compositionRef": {"name": "app"}}},
    }))
    .await
    .unwrap();
    let shop = h
        .wait_for(
            "the namespaced XR to be Ready",
            Duration::from_secs(60),
            async || {
                let x = xrs.get("shop").await.ok()?;
                (condition(&x, "Ready")?["status"] == "True").then_some(x)
            },
        )
        .await;
    // A namespaced XR has Crossplane's v2 shape: the machinery, defaults included, lives
    // under spec.crossplane.
    let machinery = &shop.data["spec"]["crossplane"];
    assert_eq!(
        machinery["compositionUpdatePolicy"], "Automatic",
        "{machinery}"
    );
    assert!(
        machinery["compositionRevisionRef"]["name"]
            .as_str()
            .is_some_and(|r| r.starts_with("app-")),
        "{machinery}"
    );
    assert_eq!(
        machinery["resourceRefs"],
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "shop-settings"}])
    );
    for flat in ["compositionRef", "compositionRevisionRef", "resourceRefs"] {
        assert!(
            shop.data["spec"].get(flat).is_none(),
            "{}",
            shop.data["spec"]
        );
    }
    let cms = h.api("v1", "ConfigMap", Some("team")).await;
    let cm = cms.get("shop-settings").await.unwrap();
    assert_eq!(
        cm.data["data"]["region"], "eu-west-1",
        "the selected EnvironmentConfig's data was patched in"
    );
    assert_eq!(
        cm.namespace().as_deref(),
        Some("team"),
        "a namespaced XR composes in its own namespace"
    );

    // One-second resyncs of the converged namespaced XR write nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let versions = async || {
        let xr = xrs.get("shop").await.unwrap().resource_version();
        (
            xr,
            cms.get("shop-settings").await.unwrap().resource_version(),
        )
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(before, versions().await);
}

/// Runs the controllers on `client` until the handle is aborted.
fn spawn_controllers(client: kube::Client, settings: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = strata_controllers::run(client, settings, std::future::pending()).await {
            panic!("controllers failed: {e}");
        }
    })
}

/// Records every uid seen per composed object name: a name with two uids was created twice.
#[derive(Default, Clone)]
struct Uids(Arc<Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>>);

impl Uids {
    fn watch(&self, api: Api<DynamicObject>) -> tokio::task::JoinHandle<()> {
        let uids = self.clone();
        tokio::spawn(async move {
            let stream = watcher(
                api,
                watcher::Config::default().labels("strata.dev/composite"),
            );
            futures_util::pin_mut!(stream);
            while let Some(Ok(ev)) = stream.next().await {
                if let watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) = ev {
                    uids.0
                        .lock()
                        .unwrap()
                        .entry(obj.name_any())
                        .or_default()
                        .insert(obj.uid().unwrap_or_default());
                }
            }
        })
    }

    fn created(&self) -> BTreeMap<String, usize> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }
}

/// `first` is ready only once someone sets `data.gate: open`; `second` waits for it.
fn gated_composition() -> Value {
    let ns_patch = json!({"type": "FromCompositeFieldPath", "fromFieldPath": "metadata.labels[strata.dev/claim-namespace]", "toFieldPath": "metadata.namespace"});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}, "data": {}});
    json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": "gated"},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XDatabase"},
            "resources": [
                {"name": "first", "base": cm, "patches": [ns_patch, {"fromFieldPath": "spec.size", "toFieldPath": "data.size"}],
                 "readinessChecks": [{"type": "MatchString", "fieldPath": "data.gate", "matchString": "open"}]},
                {"name": "second", "dependsOn": ["first"], "base": cm, "patches": [ns_patch],
                 "readinessChecks": [{"type": "None"}]},
            ],
        },
    })
}

async fn establish(h: &Harness) {
    let xrds = h
        .api(
            "apiextensions.strata.dev/v1alpha1",
            "CompositeResourceDefinition",
            None,
        )
        .await;
    h.wait_for(
        "the XRD to be established and offered",
        Duration::from_secs(30),
        async || {
            let x = xrds.get("xdatabases.example.org").await.ok()?;
            (condition(&x, "Established")?["status"] == "True"
                && condition(&x, "Offered")?["status"] == "True")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_stopped_between_waves_resume_without_creating_anything_twice() {
    let mut h = start("restart", Duration::from_secs(3600)).await;
    h.apply(xrd()).await.unwrap();
    h.apply(gated_composition()).await.unwrap();
    establish(&h).await;
    let uids = Uids::default();
    let cm_watch = uids.watch(h.api("v1", "ConfigMap", None).await);
    let claims = h.api("example.org/v1", "Database", Some("team")).await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "Database",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"size": "small", "compositionRef": {"name": "gated"}},
    }))
    .await
    .unwrap();
    let team_cms = h.api("v1", "ConfigMap", Some("team")).await;
    let xr_name = h
        .wait_for(
            "the first wave to exist",
            Duration::from_secs(30),
            async || {
                let c = claims.get("db").await.ok()?;
                let xr = c
                    .data
                    .pointer("/spec/resourceRef/name")?
                    .as_str()?
                    .to_owned();
                team_cms.get_opt(&format!("{xr}-first")).await.ok()??;
                Some(xr)
            },
        )
        .await;

    // Stop mid-way: the second wave is waiting for the first to be ready.
    h.controllers.abort();
    let _ = (&mut h.controllers).await;
    team_cms
        .patch(
            &format!("{xr_name}-first"),
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"gate": "open"}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        team_cms
            .get_opt(&format!("{xr_name}-second"))
            .await
            .unwrap()
            .is_none(),
        "nothing composes while the controllers are stopped"
    );

    h.controllers = spawn_controllers(
        h.controllers_client.clone(),
        Settings {
            resync: Duration::from_secs(3600),
            aggregate_to_controllers: true,
            ..Default::default()
        },
    );
    h.wait_for(
        "the claim to be Ready after the restart",
        Duration::from_secs(60),
        async || {
            let c = claims.get("db").await.ok()?;
            (condition(&c, "Ready")?["status"] == "True").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created = uids.created();
    assert_eq!(
        created,
        BTreeMap::from([
            (format!("{xr_name}-first"), 1),
            (format!("{xr_name}-second"), 1)
        ]),
        "every composed object was created exactly once"
    );
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    let bound: Vec<String> = xrs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(bound, vec![xr_name], "one XR for the claim");
    cm_watch.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_loses_a_conflict_is_retried_on_the_newer_version_without_duplicates() {
    let mut h = start("conflict", Duration::from_secs(3600)).await;
    h.apply(xrd()).await.unwrap();
    h.apply(composition("chain", false)).await.unwrap();
    establish(&h).await;
    let revisions = h
        .api(
            "apiextensions.strata.dev/v1alpha1",
            "CompositionRevision",
            None,
        )
        .await;
    h.wait_for("a revision", Duration::from_secs(30), async || {
        (!revisions
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty())
        .then_some(())
    })
    .await;
    // From here on the test drives the XR controller's reconcile by hand.
    h.controllers.abort();
    let _ = (&mut h.controllers).await;

    let uids = Uids::default();
    let cm_watch = uids.watch(h.api("v1", "ConfigMap", None).await);
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "XDatabase",
        "metadata": {"name": "direct", "labels": {"strata.dev/claim-namespace": "team"}},
        "spec": {"size": "small", "compositionRef": {"name": "chain"}},
    }))
    .await
    .unwrap();
    // The controller reads this version...
    let stale = xrs.get("direct").await.unwrap();
    // ...and someone else writes the XR before the controller does.
    xrs.patch(
        "direct",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"touched": "by-someone-else"}}})),
    )
    .await
    .unwrap();

    let shared = strata_controllers::shared::Shared::start(
        h.client.clone(),
        Settings::default(),
        Arc::new(strata_controllers::metrics::Metrics::default()),
    )
    .unwrap();
    shared.wait_ready().await.unwrap();
    let xrd_api: Api<strata_core::model::CompositeResourceDefinition> = Api::all(h.client.clone());
    let definition = xrd_api.get("xdatabases.example.org").await.unwrap();
    let resource = h
        .kinds
        .resolve("example.org/v1", "XDatabase")
        .await
        .unwrap()
        .resource;
    let ctx = Arc::new(strata_controllers::xr::XrContext {
        shared: shared.clone(),
        resource,
        namespaced: false,
        xrd: Arc::new(std::sync::RwLock::new(definition)),
    });
    let action = strata_controllers::xr::reconcile(Arc::new(stale.into()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_millis(200)),
        "the stale write is refused and retried soon"
    );
    let after = xrs.get("direct").await.unwrap();
    assert_eq!(
        after.labels().get("touched").map(String::as_str),
        Some("by-someone-else"),
        "the other writer's change is kept"
    );
    assert!(
        after.finalizers().is_empty(),
        "the refused write changed nothing"
    );
    assert!(
        uids.created().is_empty(),
        "nothing was applied on the stale version"
    );

    // The retry reads the newer version and composes everything in one pass.
    strata_controllers::xr::reconcile(Arc::new(after.into()), ctx.clone())
        .await
        .unwrap();
    let composed = xrs.get("direct").await.unwrap();
    assert_eq!(
        composed.labels().get("touched").map(String::as_str),
        Some("by-someone-else")
    );
    assert_eq!(condition(&composed, "Ready").unwrap()["status"], "True");
    assert_eq!(
        composed.data["spec"]["resourceRefs"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    shared.stop();

    // The controllers take over and converge without creating anything again.
    h.controllers = spawn_controllers(
        h.controllers_client.clone(),
        Settings {
            resync: Duration::from_secs(3600),
            aggregate_to_controllers: true,
            ..Default::default()
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        uids.created(),
        BTreeMap::from([
            ("direct-a".to_owned(), 1),
            ("direct-b".to_owned(), 1),
            ("direct-c".to_owned(), 1)
        ]),
        "every composed object was created exactly once"
    );
    cm_watch.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_removed_from_a_claim_is_removed_from_its_composite() {
    let h = start("removal", Duration::from_secs(3600)).await;
    h.apply(xrd()).await.unwrap();
    h.apply(composition("chain", false)).await.unwrap();
    establish(&h).await;
    let claims = h.api("example.org/v1", "Database", Some("team")).await;
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "Database",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"size": "small", "compositionRef": {"name": "chain"}},
    }))
    .await
    .unwrap();
    let xr_name = h
        .wait_for(
            "the XR to carry size",
            Duration::from_secs(30),
            async || {
                let c = claims.get("db").await.ok()?;
                let name = c
                    .data
                    .pointer("/spec/resourceRef/name")?
                    .as_str()?
                    .to_owned();
                (xrs.get(&name).await.ok()?.data["spec"]["size"] == "small").then_some(name)
            },
        )
        .await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "Database",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"compositionRef": {"name": "chain"}},
    }))
    .await
    .unwrap();
    h.wait_for(
        "size to leave the XR",
        Duration::from_secs(30),
        async || {
            let xr = xrs.get(&xr_name).await.ok()?;
            xr.data["spec"].get("size").is_none().then_some(())
        },
    )
    .await;
    let xr = xrs.get(&xr_name).await.unwrap();
    assert_eq!(
        xr.data["spec"]["compositionRef"]["name"], "chain",
        "the fields still in the claim stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_revisions_beyond_the_history_limit_are_deleted_unless_in_use() {
    let mut h = start("revision-gc", Duration::from_secs(3600)).await;
    h.controllers.abort();
    let _ = (&mut h.controllers).await;
    h.controllers = spawn_controllers(
        h.controllers_client.clone(),
        Settings {
            resync: Duration::from_secs(3600),
            aggregate_to_controllers: true,
            revision_history_limit: 2,
            ..Default::default()
        },
    );
    h.apply(xrd()).await.unwrap();
    let revisions = h
        .api(
            "apiextensions.strata.dev/v1alpha1",
            "CompositionRevision",
            None,
        )
        .await;
    let numbered = async || {
        let mut v: Vec<i64> = revisions
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .filter_map(|r| r.data["spec"]["revision"].as_i64())
            .collect();
        v.sort();
        Some(v)
    };
    let version = |size: &str| {
        let mut c = composition("chain", false);
        c["spec"]["resources"][0]["base"]["data"] = json!({"version": size});
        c
    };
    // A revision applied as Crossplane's kind is converted and never collected: its owner, the
    // Crossplane object, decides when it goes.
    h.apply(json!({
        "apiVersion": "apiextensions.crossplane.io/v1", "kind": "CompositionRevision",
        "metadata": {"name": "chain-imported", "labels": {"crossplane.io/composition-name": "chain"}},
        "spec": {"revision": 0, "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XDatabase"},
            "resources": [{"name": "a", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}}}]},
    }))
    .await
    .unwrap();
    let imported = h
        .wait_for(
            "the converted revision",
            Duration::from_secs(30),
            async || revisions.get("chain-imported").await.ok()?.uid(),
        )
        .await;
    h.apply(version("1")).await.unwrap();
    h.wait_for("revision 1", Duration::from_secs(30), async || {
        (numbered().await? == vec![0, 1]).then_some(())
    })
    .await;
    establish(&h).await;
    // An XR pinned to revision 1 keeps it alive.
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "XDatabase",
        "metadata": {"name": "pinned", "labels": {"strata.dev/claim-namespace": "team"}},
        "spec": {"size": "small", "compositionRef": {"name": "chain"}, "compositionUpdatePolicy": "Manual"},
    }))
    .await
    .unwrap();
    h.wait_for(
        "the XR to pin revision 1",
        Duration::from_secs(30),
        async || {
            xrs.get("pinned")
                .await
                .ok()?
                .data
                .pointer("/spec/compositionRevisionRef/name")
                .map(|_| ())
        },
    )
    .await;
    for (i, v) in ["2", "3", "4"].into_iter().enumerate() {
        h.apply(version(v)).await.unwrap();
        let want = i as i64 + 2;
        h.wait_for("the next revision", Duration::from_secs(30), async || {
            numbered().await?.contains(&want).then_some(())
        })
        .await;
    }
    h.wait_for(
        "revisions 2 to be collected",
        Duration::from_secs(30),
        async || (numbered().await? == vec![0, 1, 3, 4]).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        revisions.get("chain-imported").await.unwrap().uid(),
        Some(imported),
        "the converted revision was never deleted and made again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_environment_config_recomposes_the_composites_that_use_it() {
    // An hourly resync: only the EnvironmentConfig watch can bring the change in time.
    let h = start("environment-watch", Duration::from_secs(3600)).await;
    h.apply(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "CompositeResourceDefinition",
        "metadata": {"name": "xapps.example.org"},
        "spec": {
            "group": "example.org",
            "scope": "Namespaced",
            "names": {"kind": "XApp", "plural": "xapps"},
            "versions": [{"name": "v1", "served": true, "referenceable": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}}],
        },
    }))
    .await
    .unwrap();
    let config = |region: &str| {
        json!({
            "apiVersion": "apiextensions.strata.dev/v1alpha1", "kind": "EnvironmentConfig",
            "metadata": {"name": "site"},
            "data": {"region": region},
        })
    };
    h.apply(config("eu-west-1")).await.unwrap();
    h.apply(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": "app"},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
            "environment": {"environmentConfigs": [{"type": "Reference", "ref": {"name": "site"}}]},
            "resources": [{"name": "settings",
                "base": {"apiVersion": "v1", "kind": "ConfigMap", "data": {}},
                "patches": [{"type": "FromEnvironmentFieldPath", "fromFieldPath": "region", "toFieldPath": "data.region"}],
                "readinessChecks": [{"type": "NonEmpty", "fieldPath": "data.region"}]}],
        },
    }))
    .await
    .unwrap();
    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "XApp",
        "metadata": {"name": "shop", "namespace": "team"},
        "spec": {"crossplane": {"compositionRef": {"name": "app"}}},
    }))
    .await
    .unwrap();
    let cms = h.api("v1", "ConfigMap", Some("team")).await;
    let region = async || {
        cms.get_opt("shop-settings")
            .await
            .ok()??
            .data
            .pointer("/data/region")?
            .as_str()
            .map(str::to_owned)
    };
    h.wait_for("the first region", Duration::from_secs(60), async || {
        (region().await? == "eu-west-1").then_some(())
    })
    .await;
    // Let the passes our own writes triggered finish: from here on nothing but the
    // EnvironmentConfig change can start one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.apply(config("us-east-1")).await.unwrap();
    h.wait_for(
        "the changed region to reach the composed resource",
        Duration::from_secs(20),
        async || (region().await? == "us-east-1").then_some(()),
    )
    .await;
}

/// An XRD without claims for `kind` (plural `plural`) in example.org, with a string `spec.tier`.
fn plain_xrd(kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "CompositeResourceDefinition",
        "metadata": {"name": format!("{plural}.example.org")},
        "spec": {
            "group": "example.org",
            "names": {"kind": kind, "plural": plural},
            "versions": [{
                "name": "v1", "served": true, "referenceable": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"tier": {"type": "string"}}},
                }}},
            }],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_composite_is_composed_in_order_and_deleted_after_its_compositions_are_gone() {
    let h = start("nested", Duration::from_secs(3600)).await;
    for (kind, plural) in [("XInner", "xinners"), ("XOuter", "xouters")] {
        h.apply(plain_xrd(kind, plural)).await.unwrap();
    }
    // The inner XR composes a ConfigMap; the outer composes an inner XR, and a ConfigMap that
    // waits for it.
    h.apply(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1", "kind": "Composition",
        "metadata": {"name": "inner"},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XInner"},
            "resources": [{"name": "leaf",
                "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}, "data": {}},
                "patches": [{"fromFieldPath": "spec.tier", "toFieldPath": "data.tier"}],
                "readinessChecks": [{"type": "None"}]}],
        },
    }))
    .await
    .unwrap();
    h.apply(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1", "kind": "Composition",
        "metadata": {"name": "outer"},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XOuter"},
            "resources": [
                {"name": "inner",
                 "base": {"apiVersion": "example.org/v1", "kind": "XInner", "spec": {"compositionRef": {"name": "inner"}}},
                 "patches": [{"fromFieldPath": "spec.tier", "toFieldPath": "spec.tier"}]},
                {"name": "summary", "dependsOn": ["inner"],
                 "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}, "data": {"nested": "yes"}},
                 "readinessChecks": [{"type": "None"}]},
            ],
        },
    }))
    .await
    .unwrap();
    let configmaps: Api<DynamicObject> = h.api("v1", "ConfigMap", None).await;
    let order = Order::default();
    let _watch = order.watch(configmaps.clone());

    h.apply(json!({
        "apiVersion": "example.org/v1", "kind": "XOuter",
        "metadata": {"name": "stack"},
        "spec": {"tier": "gold", "compositionRef": {"name": "outer"}},
    }))
    .await
    .unwrap();
    let outers = h.api("example.org/v1", "XOuter", None).await;
    let inners = h.api("example.org/v1", "XInner", None).await;
    h.wait_for(
        "the outer XR to be Ready",
        Duration::from_secs(60),
        async || {
            let outer = outers.get("stack").await.ok()?;
            (condition(&outer, "Ready")?["status"] == "True").then_some(())
        },
    )
    .await;
    let inner = inners.get("stack-inner").await.unwrap();
    assert_eq!(
        condition(&inner, "Ready").unwrap()["status"],
        "True",
        "the nested XR is Ready through its own composition"
    );
    let leaf = h
        .api("v1", "ConfigMap", Some("default"))
        .await
        .get("stack-inner-leaf")
        .await
        .expect("the inner XR's ConfigMap");
    assert_eq!(
        leaf.data["data"]["tier"], "gold",
        "spec flows outer → inner → leaf"
    );
    h.wait_for(
        "leaf and summary to be seen",
        Duration::from_secs(10),
        async || (order.0.lock().unwrap().0.len() == 2).then_some(()),
    )
    .await;
    assert_eq!(
        order.0.lock().unwrap().0,
        ["leaf", "summary"],
        "the summary waits until the nested XR is Ready"
    );

    // The Compositions disappear first; deletion still runs from the recorded inventories.
    let compositions = h
        .api("apiextensions.strata.dev/v1alpha1", "Composition", None)
        .await;
    for name in ["outer", "inner"] {
        compositions
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    outers
        .delete("stack", &DeleteParams::default())
        .await
        .unwrap();
    h.wait_for(
        "everything to be gone",
        Duration::from_secs(60),
        async || {
            let outer_gone = outers.get_opt("stack").await.ok()?.is_none();
            let inner_gone = inners.get_opt("stack-inner").await.ok()?.is_none();
            let left = configmaps
                .list(&kube::api::ListParams::default().labels("strata.dev/composite"))
                .await
                .ok()?
                .items
                .len();
            (outer_gone && inner_gone && left == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        order.0.lock().unwrap().1,
        ["summary", "leaf"],
        "the summary goes before the nested XR (and its leaf)"
    );
}

fn crossplane_composition(name: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.crossplane.io/v1",
        "kind": "Composition",
        "metadata": {"name": name},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XDatabase"},
            "mode": "Pipeline",
            "pipeline": [{"step": "pt", "functionRef": {"name": "function-patch-and-transform"},
                "input": {"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources", "resources": [
                    {"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}}}]}}],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossplane_kinds_never_overwrite_a_users_object_nor_a_running_crossplanes_crds() {
    let mut h = start("crossplane", Duration::from_secs(3600)).await;
    // A user's own native Composition and a Crossplane one of the same name.
    let mut mine = composition("shared-name", false);
    mine["metadata"]["labels"] = json!({"owner": "me"});
    h.apply(mine).await.unwrap();
    h.apply(crossplane_composition("shared-name"))
        .await
        .unwrap();
    let crossplane = h
        .api("apiextensions.crossplane.io/v1", "Composition", None)
        .await;
    let synced = h
        .wait_for(
            "Synced=False on the clash",
            Duration::from_secs(30),
            async || {
                let c = crossplane.get("shared-name").await.ok()?;
                let s = condition(&c, "Synced")?.clone();
                (s["status"] == "False").then_some(s)
            },
        )
        .await;
    assert_eq!(synced["reason"], "NameClash", "{synced}");
    let native = h
        .api("apiextensions.strata.dev/v1alpha1", "Composition", None)
        .await;
    let kept = native.get("shared-name").await.unwrap();
    assert_eq!(kept.labels().get("owner").map(String::as_str), Some("me"));
    assert_eq!(
        kept.data["spec"]["resources"].as_array().unwrap().len(),
        4,
        "the user's Composition is not overwritten"
    );

    // A cluster where Crossplane owns its CRDs: Strata leaves them and their objects alone.
    h.controllers.abort();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(h.client.clone());
    crds.delete(
        "compositions.apiextensions.crossplane.io",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    h.wait_for("our CRD to go", Duration::from_secs(30), async || {
        crds.get_opt("compositions.apiextensions.crossplane.io")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let foreign = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "compositions.apiextensions.crossplane.io", "labels": {"app.kubernetes.io/managed-by": "crossplane"}},
        "spec": {"group": "apiextensions.crossplane.io", "scope": "Cluster",
            "names": {"kind": "Composition", "plural": "compositions", "singular": "composition"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    crds.patch(
        "compositions.apiextensions.crossplane.io",
        &PatchParams::apply("crossplane").force(),
        &Patch::Apply(&foreign),
    )
    .await
    .unwrap();
    h.kinds
        .forget("apiextensions.crossplane.io/v1", "Composition");
    h.controllers = spawn_controllers(
        h.controllers_client.clone(),
        Settings {
            resync: Duration::from_secs(3600),
            aggregate_to_controllers: true,
            ..Default::default()
        },
    );
    h.apply(crossplane_composition("theirs")).await.unwrap();
    // The native kinds are served as before.
    h.apply(xrd()).await.unwrap();
    establish(&h).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        native.get_opt("theirs").await.unwrap().is_none(),
        "a running Crossplane's Composition is not converted"
    );
    let crd = crds
        .get("compositions.apiextensions.crossplane.io")
        .await
        .unwrap();
    assert_eq!(
        crd.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("crossplane"),
        "Crossplane's CRD is left as it is"
    );

    // Replacing Crossplane core, as the README says: its Deployment is scaled to zero (here: it
    // never ran), the CRDs are kept and marked as Strata's, and `strata run` starts again. Strata
    // takes the CRD over and converts the Composition that was already there.
    crds.patch(
        "compositions.apiextensions.crossplane.io",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "strata"}}})),
    )
    .await
    .unwrap();
    h.controllers = spawn_controllers(
        h.client.clone(),
        Settings {
            resync: Duration::from_secs(3600),
            ..Default::default()
        },
    );
    h.wait_for(
        "the Composition already there to be converted",
        Duration::from_secs(30),
        async || native.get_opt("theirs").await.ok()?,
    )
    .await;
}

/// Issue 13: a claim whose XR waits for a `Required` patch's missing source says which patch
/// and which path, in the Ready message of both and in one Warning event on each, not repeated
/// by later passes; supplying the field releases the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_patch_with_a_missing_source_is_explained_on_the_claim_and_xr_once() {
    let h = start("required", Duration::from_secs(1)).await;
    h.apply(xrd()).await.unwrap();
    h.apply(json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": "needs-size"},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XDatabase"},
            "resources": [{
                "name": "config",
                "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}, "data": {}},
                "patches": [
                    {"fromFieldPath": "metadata.labels[strata.dev/claim-namespace]", "toFieldPath": "metadata.namespace"},
                    {"fromFieldPath": "spec.size", "toFieldPath": "data.size", "policy": {"fromFieldPath": "Required"}},
                ],
                "readinessChecks": [{"type": "None"}],
            }],
        },
    }))
    .await
    .unwrap();
    establish(&h).await;
    let claims = h.api("example.org/v1", "Database", Some("team")).await;
    let xrs = h.api("example.org/v1", "XDatabase", None).await;
    let claim = |spec: Value| {
        json!({"apiVersion": "example.org/v1", "kind": "Database",
            "metadata": {"name": "db", "namespace": "team"}, "spec": spec})
    };
    h.apply(claim(json!({"compositionRef": {"name": "needs-size"}})))
        .await
        .unwrap();

    let expected = "Unready resources: config (waiting for spec.size: Required patch 1 FromCompositeFieldPath)";
    let xr_name = h
        .wait_for(
            "the claim's Ready message to explain the withheld resource",
            Duration::from_secs(30),
            async || {
                let c = claims.get("db").await.ok()?;
                let ready = condition(&c, "Ready")?;
                (ready["status"] == "False" && ready["message"] == expected).then_some(())?;
                Some(
                    c.data
                        .pointer("/spec/resourceRef/name")?
                        .as_str()?
                        .to_owned(),
                )
            },
        )
        .await;
    let xr = xrs.get(&xr_name).await.unwrap();
    assert_eq!(condition(&xr, "Ready").unwrap()["message"], expected);
    assert_eq!(condition(&xr, "Ready").unwrap()["reason"], "Creating");

    let note = "resource `config` withheld: waiting for spec.size: Required patch 1 FromCompositeFieldPath";
    let warnings = async |ns: &str, regarding: &str| -> Vec<Value> {
        let events = h.api("events.k8s.io/v1", "Event", Some(ns)).await;
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.data["reason"] == "RequiredSourceMissing")
            .filter(|e| e.data["regarding"]["name"] == regarding)
            .map(|e| e.data)
            .collect()
    };
    let (xr_events, claim_events) = h
        .wait_for(
            "the Warning event on the XR and on the claim",
            Duration::from_secs(10),
            async || {
                let x = warnings("default", &xr_name).await;
                let c = warnings("team", "db").await;
                (!x.is_empty() && !c.is_empty()).then_some((x, c))
            },
        )
        .await;
    for (what, events) in [("XR", &xr_events), ("claim", &claim_events)] {
        assert_eq!(events.len(), 1, "one event on the {what}: {events:?}");
        assert_eq!(events[0]["type"], "Warning");
        assert_eq!(events[0]["note"], note);
    }

    // Passes every second: nothing changes, so nothing is written and no event repeats.
    let settled = xrs.get(&xr_name).await.unwrap().resource_version();
    let claim_settled = claims.get("db").await.unwrap().resource_version();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(xrs.get(&xr_name).await.unwrap().resource_version(), settled);
    assert_eq!(
        claims.get("db").await.unwrap().resource_version(),
        claim_settled
    );
    for (ns, regarding) in [("default", xr_name.as_str()), ("team", "db")] {
        let events = warnings(ns, regarding).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(
            events[0]["series"].is_null(),
            "the event was not published again: {:?}",
            events[0]
        );
    }

    // The developer supplies the field: the resource is created and the claim becomes Ready.
    h.apply(claim(
        json!({"compositionRef": {"name": "needs-size"}, "size": "small"}),
    ))
    .await
    .unwrap();
    h.wait_for(
        "the claim to become Ready",
        Duration::from_secs(30),
        async || {
            let c = claims.get("db").await.ok()?;
            (condition(&c, "Ready")?["status"] == "True").then_some(())
        },
    )
    .await;
}
