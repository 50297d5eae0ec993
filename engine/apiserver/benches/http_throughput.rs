//! Durable write throughput through the real API: kube-rs clients over HTTPS with the bearer
//! token against a control plane started in this process on a loopback port. Creates/s and
//! updates/s with 1 client and with 16 concurrent clients (one connection each), with p99.
//!
//! Run: `cargo bench -p strata-apiserver --bench http_throughput`

use std::time::{Duration, Instant};

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use strata_apiserver::{Server, ServerConfig};

/// CPU time (user + system) this process has used, client and server together; unlike
/// wall-clock rates it barely depends on what else the machine is running.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name (which may contain spaces) follow its ')'.
            let rest = s.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime = fields.get(11)?.parse::<u64>().ok()?;
            let stime = fields.get(12)?.parse::<u64>().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    // Linux reports clock ticks of 1/100 s.
    Duration::from_millis(ticks * 10)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn configmap(name: &str, value: usize) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"value": value.to_string(), "payload": "x".repeat(200)}}))
    .expect("a ConfigMap")
}

async fn client(server: &Server) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    strata_apiserver::tls::install_default_crypto_provider();
    kube::Client::try_from(config).expect("client")
}

async fn run_clients(
    server: &Server,
    clients: usize,
    per_client: usize,
    prefix: &str,
    update: bool,
) -> (f64, Duration, Duration) {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    let mut apis = Vec::new();
    for _ in 0..clients {
        let api: Api<DynamicObject> = Api::namespaced_with(client(server).await, "default", &ar);
        // Connect (TCP + TLS) before the clock starts, as a long-lived client would be.
        api.get_opt("warm-up").await.expect("warm-up request");
        apis.push(api);
    }
    let start = Instant::now();
    let cpu_start = cpu_time();
    let mut tasks = Vec::new();
    for (c, api) in apis.into_iter().enumerate() {
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let name = format!("{prefix}-{c}-{i}");
                let began = Instant::now();
                if update {
                    let patch = json!({"data": {"value": format!("u{i}")}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .expect("update");
                } else {
                    api.create(&PostParams::default(), &configmap(&name, i))
                        .await
                        .expect("create");
                }
                latencies.push(began.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    let elapsed = start.elapsed();
    let cpu_per_write = (cpu_time() - cpu_start) / u32::try_from(all.len().max(1)).unwrap_or(1);
    all.sort();
    (
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.99),
        cpu_per_write,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("strata-http-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = Server::start(ServerConfig::new(
        dir.clone(),
        "127.0.0.1:0".parse().expect("loopback address"),
    ))
    .await
    .expect("start the control plane");

    let (rate, p99, cpu) = run_clients(&server, 1, 2_000, "single", false).await;
    println!("HTTPS creates, 1 client:    {rate:>8.0}/s  p99 {p99:?}  CPU/write {cpu:?}");
    let (rate, p99, cpu) = run_clients(&server, 16, 250, "many", false).await;
    println!("HTTPS creates, 16 clients:  {rate:>8.0}/s  p99 {p99:?}  CPU/write {cpu:?}");
    let (rate, p99, cpu) = run_clients(&server, 1, 2_000, "single", true).await;
    println!("HTTPS updates, 1 client:    {rate:>8.0}/s  p99 {p99:?}  CPU/write {cpu:?}");
    let (rate, p99, cpu) = run_clients(&server, 16, 250, "many", true).await;
    println!("HTTPS updates, 16 clients:  {rate:>8.0}/s  p99 {p99:?}  CPU/write {cpu:?}");

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
