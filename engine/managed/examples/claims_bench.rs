//! The claims benchmark of the managed-resource runtime: N PostgreSQLInstance claims (AWS RDS on
//! moto) and M ObjectStore claims (GCS on gcp-storage-emulator) through the real compositions, on the
//! embedded control plane with the composition controllers and the managed-resource runtime
//! in-process, as `strata up` runs them.
//!
//! A recording proxy sits in front of each emulator and counts every cloud call by operation and
//! resource. Reports: time until every claim is Ready; cloud calls per managed resource by
//! operation until that resource was Ready (the happy path); throttling errors received; and the
//! idle cost of one poll interval (cloud calls and Kubernetes writes).
//!
//! `cargo run -p strata-managed --example claims_bench -- [DATABASES] [BUCKETS] [POLL_SECONDS] [PROJECTS]`
//! (defaults 200 200 30 10; emulators from tests/requirements.txt; kubectl on PATH).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use serde_json::{Value, json};
use strata_provider::Provider;
use strata_provider_aws::AwsRdsProvider;
use strata_provider_gcp::GcsBucketProvider;

use strata_test_support::cloud_proxy::{Call, CloudProxy, gcs_call, rds_call};
use strata_test_support::{Emulator, kubectl_command, repo_root};

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> anyhow::Result<String> {
    let output = kubectl_command(kubeconfig)
        .args(args)
        .current_dir(repo_root())
        .output()
        .context("run kubectl")?;
    if !output.status.success() {
        bail!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1alpha1", kind), plural)
}

fn is_ready(object: &DynamicObject) -> bool {
    object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn external_name(object: &DynamicObject) -> Option<String> {
    object
        .metadata
        .annotations
        .as_ref()?
        .get("strata.dev/external-name")
        .cloned()
}

/// Calls per managed resource by operation, counted until each resource was first seen Ready.
fn happy_path(calls: &[Call], ready_at: &HashMap<String, Instant>) -> BTreeMap<String, Vec<usize>> {
    let mut per: BTreeMap<String, HashMap<&str, usize>> = BTreeMap::new();
    for call in calls {
        let Some(ready) = ready_at.get(&call.resource) else {
            continue;
        };
        if call.at <= *ready {
            *per.entry(call.operation.clone())
                .or_default()
                .entry(call.resource.as_str())
                .or_default() += 1;
        }
    }
    per.into_iter()
        .map(|(operation, by_resource)| {
            let mut counts: Vec<usize> = ready_at
                .keys()
                .map(|name| by_resource.get(name.as_str()).copied().unwrap_or(0))
                .collect();
            counts.sort_unstable();
            (operation, counts)
        })
        .collect()
}

fn print_happy_path(cloud: &str, calls: &[Call], ready_at: &HashMap<String, Instant>) {
    println!("{cloud}: calls per managed resource until it was Ready (min / median / max / total)");
    for (operation, counts) in happy_path(calls, ready_at) {
        let total: usize = counts.iter().sum();
        let median = counts.get(counts.len() / 2).copied().unwrap_or(0);
        println!(
            "  {operation:<24} {} / {median} / {} / {total}",
            counts.first().copied().unwrap_or(0),
            counts.last().copied().unwrap_or(0),
        );
    }
    let shared: BTreeMap<&str, usize> = calls.iter().filter(|c| c.resource.is_empty()).fold(
        BTreeMap::new(),
        |mut by_operation, call| {
            *by_operation.entry(call.operation.as_str()).or_default() += 1;
            by_operation
        },
    );
    if !shared.is_empty() {
        println!("  calls naming no single resource (list sweeps): {shared:?}");
    }
}

fn by_operation(calls: &[Call]) -> BTreeMap<String, usize> {
    calls.iter().fold(BTreeMap::new(), |mut map, call| {
        *map.entry(call.operation.clone()).or_default() += 1;
        map
    })
}

/// The most calls in any one-second window.
fn peak_per_second(calls: &[Call]) -> usize {
    let mut times: Vec<Instant> = calls.iter().map(|c| c.at).collect();
    times.sort_unstable();
    let mut peak = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] > Duration::from_secs(1) {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    peak
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()
        .context("arguments: [DATABASES] [BUCKETS] [POLL_SECONDS] [PROJECTS]")?;
    let arg = |index: usize, default: u64| args.get(index).copied().unwrap_or(default);
    let (databases, buckets, poll_seconds, projects) =
        (arg(0, 200), arg(1, 200), arg(2, 30), arg(3, 10).max(1));
    let poll_interval = Duration::from_secs(poll_seconds);

    let moto = Emulator::moto();
    // gcp-storage-emulator stores what a PATCH sets (fake-gcs-server drops labels and lifecycle
    // rules), so the buckets converge as they would on GCS; it ignores most settings of an
    // insert, which costs one PATCH per bucket that GCS itself would not need.
    let gcs = Emulator::gcp_storage_emulator();
    let rds_proxy = CloudProxy::start(&moto.url, rds_call, None).await;
    let gcs_proxy = CloudProxy::start(&gcs.url, gcs_call, None).await;

    let dir = strata_test_support::temp_dir("claims-bench");
    let _ = std::fs::remove_dir_all(&dir);
    let server = strata_apiserver::Server::start(strata_apiserver::ServerConfig::new(
        dir.clone(),
        "127.0.0.1:0".parse()?,
    ))
    .await?;
    let kubeconfig_path = server.kubeconfig_path().to_owned();
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    strata_controllers::install_crypto_provider();
    let client = kube::Client::try_from(config)?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let controllers = tokio::spawn(strata_controllers::run(
        client.clone(),
        strata_controllers::Settings::default(),
        until_stopped(),
    ));
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(AwsRdsProvider),
        Arc::new(GcsBucketProvider),
        Arc::new(strata_provider_gcp::GcsBucketIamMemberProvider),
    ];
    let runtime = tokio::spawn(strata_managed::run(
        client.clone(),
        providers,
        strata_managed::Settings {
            poll_interval,
            ..Default::default()
        },
        until_stopped(),
    ));

    let dbs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &strata_managed::api_resource(&AwsRdsProvider.managed_kind()),
    );
    let bkts: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &strata_managed::api_resource(&GcsBucketProvider.managed_kind()),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let crds = kubectl(&kubeconfig_path, &["get", "crds", "-o", "name"])?;
        if crds.contains("dbinstances.rds.aws.strata.dev")
            && crds.contains("buckets.storage.gcp.strata.dev")
            && crds.contains("compositions.apiextensions.strata.dev")
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the CRDs were not installed within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let configs = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: strata-system}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: bench}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: aws-credentials, namespace: strata-system}}\nstringData: {{aws_access_key_id: testing, aws_secret_access_key: testing}}\n---\napiVersion: aws.strata.dev/v1alpha1\nkind: ProviderConfig\nmetadata: {{name: default}}\nspec: {{credentials: {{source: Secret, secretRef: {{namespace: strata-system, name: aws-credentials}}}}, endpoint: {{url: '{}'}}}}\n---\napiVersion: gcp.strata.dev/v1alpha1\nkind: ProviderConfig\nmetadata: {{name: default}}\nspec: {{credentials: {{source: Anonymous}}, endpoint: '{}'}}\n",
        rds_proxy.url, gcs_proxy.url
    );
    let configs_path = dir.join("configs.yaml");
    std::fs::write(&configs_path, configs)?;
    kubectl(
        &kubeconfig_path,
        &["apply", "-f", &configs_path.to_string_lossy()],
    )?;
    kubectl(
        &kubeconfig_path,
        &[
            "apply",
            "-R",
            "-f",
            "compositions/postgres",
            "-f",
            "compositions/objectstore",
        ],
    )?;
    let claims_db: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "bench",
        &resource(
            "platform.strata.dev",
            "PostgreSQLInstance",
            "postgresqlinstances",
        ),
    );
    let claims_store: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "bench",
        &resource("platform.strata.dev", "ObjectStore", "objectstores"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while claims_db
        .list(&ListParams::default().limit(1))
        .await
        .is_err()
        || claims_store
            .list(&ListParams::default().limit(1))
            .await
            .is_err()
    {
        if Instant::now() > deadline {
            bail!("the claim kinds were not served within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The first instant each managed resource (by cloud name) was seen Ready, from a watch.
    let db_ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bucket_ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut watches = Vec::new();
    for (api, ready_at) in [
        (dbs.clone(), db_ready_at.clone()),
        (bkts.clone(), bucket_ready_at.clone()),
    ] {
        watches.push(tokio::spawn(async move {
            let stream = kube::runtime::watcher(api, kube::runtime::watcher::Config::default())
                .default_backoff()
                .applied_objects();
            futures_util::pin_mut!(stream);
            while let Some(Ok(object)) = stream.next().await {
                if let (true, Some(name)) = (is_ready(&object), external_name(&object)) {
                    ready_at
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        }));
    }

    let started = Instant::now();
    for i in 0..databases {
        let claim = json!({
            "apiVersion": "platform.strata.dev/v1alpha1", "kind": "PostgreSQLInstance",
            "metadata": {"name": format!("db-{i}"), "namespace": "bench"},
            // The password Composition, as this benchmark has always measured.
            "spec": {"parameters": {"size": "small", "storageGB": 20, "region": "us-east-1"},
                     "compositionRef": {"name": "postgres-aws"},
                     "writeConnectionSecretToRef": {"name": format!("db-{i}-connection")}},
        });
        claims_db
            .create(&PostParams::default(), &serde_json::from_value(claim)?)
            .await?;
    }
    for i in 0..buckets {
        let claim = json!({
            "apiVersion": "platform.strata.dev/v1alpha1", "kind": "ObjectStore",
            "metadata": {"name": format!("store-{i}"), "namespace": "bench"},
            // gcp-storage-emulator places every bucket in US whatever was asked.
            // Each store also grants a ServiceAccount on its bucket (a BucketIAMMember).
            "spec": {"parameters": {"project": format!("bench-project-{}", i % projects), "location": "US", "team": "bench",
                                    "access": {"serviceAccount": "bench"}},
                     "compositionSelector": {"matchLabels": {"tier": "standard"}},
                     "writeConnectionSecretToRef": {"name": format!("store-{i}-bucket")}},
        });
        claims_store
            .create(&PostParams::default(), &serde_json::from_value(claim)?)
            .await?;
    }
    let applied = started.elapsed();

    let mut dbs_ready_after = None;
    let mut buckets_ready_after = None;
    let timeout = Duration::from_secs(3600);
    loop {
        let ready_claims = |list: Vec<DynamicObject>| list.iter().filter(|c| is_ready(c)).count();
        let db_claims = ready_claims(claims_db.list(&ListParams::default()).await?.items);
        let store_claims = ready_claims(claims_store.list(&ListParams::default()).await?.items);
        if db_claims as u64 == databases && dbs_ready_after.is_none() {
            dbs_ready_after = Some(started.elapsed());
        }
        if store_claims as u64 == buckets && buckets_ready_after.is_none() {
            buckets_ready_after = Some(started.elapsed());
        }
        if dbs_ready_after.is_some() && buckets_ready_after.is_some() {
            break;
        }
        if started.elapsed() > timeout {
            bail!(
                "timed out: {db_claims}/{databases} database claims and {store_claims}/{buckets} bucket claims Ready"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_ready = started.elapsed();
    let rds_ready_calls = rds_proxy.calls();
    let gcs_ready_calls = gcs_proxy.calls();

    // Idle: one whole poll interval (plus a margin) after everything settled.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let versions = |lists: Vec<Vec<DynamicObject>>| -> BTreeMap<String, Option<String>> {
        lists
            .into_iter()
            .flatten()
            .map(|o| {
                (
                    format!(
                        "{}/{}",
                        o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default(),
                        o.metadata.name.clone().unwrap_or_default()
                    ),
                    o.metadata.resource_version.clone(),
                )
            })
            .collect()
    };
    let snapshot = || async {
        anyhow::Ok(versions(vec![
            dbs.list(&ListParams::default()).await?.items,
            bkts.list(&ListParams::default()).await?.items,
            claims_db.list(&ListParams::default()).await?.items,
            claims_store.list(&ListParams::default()).await?.items,
        ]))
    };
    let before = snapshot().await?;
    let (rds_before, gcs_before) = (rds_proxy.calls().len(), gcs_proxy.calls().len());
    let idle_window = poll_interval + Duration::from_secs(1);
    tokio::time::sleep(idle_window).await;
    let after = snapshot().await?;
    let idle_rds = rds_proxy.calls()[rds_before..].to_vec();
    let idle_gcs = gcs_proxy.calls()[gcs_before..].to_vec();
    let idle_writes = before
        .iter()
        .filter(|(name, version)| after.get(*name) != Some(version))
        .count();

    let throttled = rds_proxy
        .calls()
        .iter()
        .chain(gcs_proxy.calls().iter())
        .filter(|c| c.throttled)
        .count();
    println!(
        "load: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "claims: {databases} PostgreSQLInstance + {buckets} ObjectStore ({projects} GCP project(s)); poll interval {poll_seconds} s"
    );
    println!("applied all claims in {applied:.2?}");
    println!(
        "all database claims Ready after {:.2?}",
        dbs_ready_after.unwrap_or(all_ready)
    );
    println!(
        "all bucket claims Ready after {:.2?} (client-side limit: one bucket create per 2 s per project)",
        buckets_ready_after.unwrap_or(all_ready)
    );
    println!("everything Ready after {all_ready:.2?}");
    let seen = |ready_at: &Mutex<HashMap<String, Instant>>| {
        ready_at.lock().unwrap_or_else(|p| p.into_inner()).clone()
    };
    print_happy_path("RDS", &rds_ready_calls, &seen(&db_ready_at));
    print_happy_path("GCS", &gcs_ready_calls, &seen(&bucket_ready_at));
    println!(
        "RDS calls until all Ready: {:?}; peak {} calls in one second",
        by_operation(&rds_ready_calls),
        peak_per_second(&rds_ready_calls)
    );
    println!(
        "GCS calls until all Ready: {:?}",
        by_operation(&gcs_ready_calls)
    );
    println!("throttling errors received from the clouds: {throttled}");
    println!(
        "idle, one poll interval ({idle_window:.0?}): RDS {:?}, GCS {:?}, Kubernetes objects rewritten {idle_writes} of {}",
        by_operation(&idle_rds),
        by_operation(&idle_gcs),
        before.len()
    );

    for watch in watches {
        watch.abort();
    }
    let _ = stop.send(true);
    runtime.await??;
    controllers.await??;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
