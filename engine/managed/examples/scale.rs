//! Scale measurement of the managed-resource runtime: N RDS instances (moto) and M buckets
//! (fake-gcs-server) applied at once to an embedded control plane; reports time to all Ready,
//! API writes during an idle window, and time to all deleted.
//!
//! `cargo run -p strata-managed --example scale -- 200 20` (emulators from tests/requirements.txt).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::json;
use strata_provider::Provider;
use strata_provider_aws::AwsRdsProvider;
use strata_provider_gcp::GcsBucketProvider;
use strata_test_support::Emulator;

async fn count_ready(api: &Api<DynamicObject>) -> anyhow::Result<(usize, usize)> {
    let list = api.list(&ListParams::default()).await?;
    let ready = list
        .items
        .iter()
        .filter(|o| {
            o.data
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .count();
    Ok((ready, list.items.len()))
}

fn resource_versions(list: &[DynamicObject]) -> Vec<Option<String>> {
    list.iter()
        .map(|o| o.metadata.resource_version.clone())
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (databases, buckets) = (
        args.first().copied().unwrap_or(200),
        args.get(1).copied().unwrap_or(20),
    );

    let moto = Emulator::moto();
    let gcs = Emulator::fake_gcs();

    let dir = strata_test_support::temp_dir("scale");
    let server = strata_apiserver::Server::start(strata_apiserver::ServerConfig::new(
        dir.clone(),
        "127.0.0.1:0".parse()?,
    ))
    .await?;
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig_path())?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    strata_controllers::install_crypto_provider();
    let client = kube::Client::try_from(config)?;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let providers: Vec<Arc<dyn Provider>> =
        vec![Arc::new(AwsRdsProvider), Arc::new(GcsBucketProvider)];
    let settings = strata_managed::Settings {
        poll_interval: Duration::from_secs(10),
        ..Default::default()
    };
    let runtime = tokio::spawn(strata_managed::run(
        client.clone(),
        providers,
        settings,
        async move {
            let _ = stopped.await;
        },
    ));
    let dbs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &strata_managed::api_resource(&AwsRdsProvider.managed_kind()),
    );
    let bkts: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &strata_managed::api_resource(&GcsBucketProvider.managed_kind()),
    );
    while dbs.list(&ListParams::default().limit(1)).await.is_err()
        || bkts.list(&ListParams::default().limit(1)).await.is_err()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "strata-system"}}))?,
        )
        .await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "strata-system");
    secrets
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "aws"}, "stringData": {"aws_access_key_id": "x", "aws_secret_access_key": "x"}}))?)
        .await?;
    let aws_configs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &strata_managed::api_resource(&AwsRdsProvider.provider_config_kind()),
    );
    aws_configs
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "aws.strata.dev/v1alpha1", "kind": "ProviderConfig", "metadata": {"name": "default"}, "spec": {"credentials": {"source": "Secret", "secretRef": {"namespace": "strata-system", "name": "aws"}}, "endpoint": {"url": moto.url}}}))?)
        .await?;
    let gcp_configs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &strata_managed::api_resource(&GcsBucketProvider.provider_config_kind()),
    );
    gcp_configs
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "gcp.strata.dev/v1alpha1", "kind": "ProviderConfig", "metadata": {"name": "default"}, "spec": {"credentials": {"source": "Anonymous"}, "endpoint": gcs.url}}))?)
        .await?;

    let started = Instant::now();
    for i in 0..databases {
        let db = json!({"apiVersion": "rds.aws.strata.dev/v1alpha1", "kind": "DBInstance", "metadata": {"name": format!("db-{i}")},
            "spec": {"forProvider": {"region": "us-east-1", "engine": "postgres", "engineVersion": "16.3", "dbInstanceClass": "db.t3.micro", "allocatedStorage": 20, "masterUsername": "app"},
                     "writeConnectionSecretToRef": {"namespace": "strata-system", "name": format!("db-{i}")}}});
        dbs.create(&PostParams::default(), &serde_json::from_value(db)?)
            .await?;
    }
    for i in 0..buckets {
        let bucket = json!({"apiVersion": "storage.gcp.strata.dev/v1alpha1", "kind": "Bucket", "metadata": {"name": format!("strata-scale-{i}")},
            "spec": {"forProvider": {"project": "demo", "location": "US-CENTRAL1", "storageClass": "STANDARD", "versioning": false, "uniformBucketLevelAccess": false}}});
        bkts.create(&PostParams::default(), &serde_json::from_value(bucket)?)
            .await?;
    }
    let applied = started.elapsed();
    let mut db_ready_at = None;
    loop {
        let (db_ready, _) = count_ready(&dbs).await?;
        let (bucket_ready, _) = count_ready(&bkts).await?;
        if db_ready == databases && db_ready_at.is_none() {
            db_ready_at = Some(started.elapsed());
        }
        if db_ready == databases && bucket_ready == buckets {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!(
                "timed out: {db_ready}/{databases} databases and {bucket_ready}/{buckets} buckets Ready"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_ready = started.elapsed();

    let before = (
        resource_versions(&dbs.list(&ListParams::default()).await?.items),
        resource_versions(&bkts.list(&ListParams::default()).await?.items),
    );
    tokio::time::sleep(Duration::from_secs(25)).await;
    let after = (
        resource_versions(&dbs.list(&ListParams::default()).await?.items),
        resource_versions(&bkts.list(&ListParams::default()).await?.items),
    );
    let idle_writes = before
        .0
        .iter()
        .zip(&after.0)
        .chain(before.1.iter().zip(&after.1))
        .filter(|(a, b)| a != b)
        .count();

    let deleting = Instant::now();
    for i in 0..databases {
        dbs.delete(&format!("db-{i}"), &DeleteParams::default())
            .await?;
    }
    for i in 0..buckets {
        bkts.delete(&format!("strata-scale-{i}"), &DeleteParams::default())
            .await?;
    }
    while !dbs.list(&ListParams::default()).await?.items.is_empty()
        || !bkts.list(&ListParams::default()).await?.items.is_empty()
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let deleted = deleting.elapsed();

    println!("databases={databases} buckets={buckets}");
    println!("applied all objects in {applied:.2?}");
    println!(
        "all databases Ready after {:.2?}",
        db_ready_at.unwrap_or(all_ready)
    );
    println!(
        "everything Ready after {all_ready:.2?} (buckets are limited to one create per 2 s per project)"
    );
    println!("objects written during a 25 s idle window (2.5 drift polls): {idle_writes}");
    println!("everything deleted in {deleted:.2?}");

    let _ = stop.send(());
    runtime.await??;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
