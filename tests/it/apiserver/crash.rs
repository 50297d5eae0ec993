//! Durability: kill -9 the real `strata up` mid-stream of writes, restart on the same data dir,
//! and find every acknowledged write with resource versions continuing upward.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

use super::fixture::{Killed, client_for, temp_dir};

fn start(dir: &Path) -> Killed {
    crate::support::strata_up_started(dir, Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9_and_versions_continue_upward() {
    let dir = temp_dir("crash");
    let mut server = start(&dir);
    let api: Api<ConfigMap> = Api::namespaced(client_for(&dir.join("kubeconfig")).await, "default");
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let api = api.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let mut c = ConfigMap::default();
                c.metadata.name = Some(format!("w{w}-{i}"));
                match api.create(&PostParams::default(), &c).await {
                    Ok(created) => {
                        let rv = created.metadata.resource_version.unwrap().parse().unwrap();
                        acked.lock().unwrap().insert(format!("w{w}-{i}"), rv);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "writes were acknowledged before the kill: {}",
        acked.len()
    );

    let _server = start(&dir);
    let api: Api<ConfigMap> = Api::namespaced(client_for(&dir.join("kubeconfig")).await, "default");
    let stored: BTreeMap<String, u64> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap(),
                c.metadata.resource_version.unwrap().parse().unwrap(),
            )
        })
        .collect();
    for (name, rv) in &acked {
        assert_eq!(
            stored.get(name),
            Some(rv),
            "acknowledged write {name} at {rv} survived"
        );
    }
    let resume_from = *acked.values().nth(acked.len() / 2).unwrap();
    let expected: Vec<&String> = acked
        .iter()
        .filter(|(_, rv)| **rv > resume_from)
        .map(|(n, _)| n)
        .collect();
    let mut resumed = Vec::new();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &resume_from.to_string())
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Added(c) = ev {
            resumed.push(c.metadata.name.unwrap());
        }
    }
    for name in &expected {
        assert!(
            resumed.contains(name),
            "a watch resumed from {resume_from} after the restart replays {name}"
        );
    }
    let mut after = ConfigMap::default();
    after.metadata.name = Some("after-restart".into());
    let created = api.create(&PostParams::default(), &after).await.unwrap();
    let max_before = stored.values().max().copied().unwrap_or(0);
    assert!(
        created
            .metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > max_before
    );
    drop(_server);
    let _ = std::fs::remove_dir_all(&dir);
}
