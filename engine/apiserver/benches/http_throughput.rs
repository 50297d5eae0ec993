//! Durable write throughput through the real API: kube-rs clients over HTTPS with the bearer
//! token against a control plane started in this process on a loopback port. Creates/s and
//! updates/s with 1 client and with 16 concurrent clients (one connection each), with p99.
//!
//! What authorization costs, in the same run: two control planes, one with RBAC and one
//! allowing everything, each written to by clients acting (impersonation headers) as a
//! developer whose `edit` RoleBinding, through a group, lets it write ConfigMaps — so with RBAC
//! every request takes the full path (impersonation checks, then the request's own decision
//! through the group's bindings), not the `system:masters` short cut. Each round runs on both
//! servers, the first of them alternating; the median round of each is reported with the ratio.
//!
//! Then a watch resumed 5,000 changes back, as a client reconnecting after it fell behind: the
//! time and CPU to replay them from the server's history.
//!
//! Run: `cargo bench -p strata-apiserver --bench http_throughput`

use std::time::{Duration, Instant};

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use strata_apiserver::rbac::Mode;
use strata_apiserver::{Server, ServerConfig};

/// The developer the clients act as, and its group (bound to `edit` in `default`).
const DEVELOPER: &str = "bench-developer";
const DEVELOPERS: &str = "bench-developers";
const ROUNDS: usize = 11;

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

/// A client of the admin kubeconfig, acting as the developer when `as_developer`.
async fn client(server: &Server, as_developer: bool) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).expect("read kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig");
    if as_developer {
        config.auth_info.impersonate = Some(DEVELOPER.to_owned());
        config.auth_info.impersonate_groups = Some(vec![DEVELOPERS.to_owned()]);
    }
    strata_apiserver::tls::install_default_crypto_provider();
    kube::Client::try_from(config).expect("client")
}

fn configmaps() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "ConfigMap"), "configmaps")
}

async fn run_clients(
    server: &Server,
    clients: usize,
    per_client: usize,
    prefix: &str,
    update: bool,
) -> (f64, Duration, Duration) {
    let ar = configmaps();
    let mut apis = Vec::new();
    for _ in 0..clients {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client(server, true).await, "default", &ar);
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

async fn start(dir: &std::path::Path, authorization: Mode) -> Server {
    let mut config = ServerConfig::new(
        dir.to_owned(),
        "127.0.0.1:0".parse().expect("loopback address"),
    );
    config.authorization = authorization;
    let server = Server::start(config)
        .await
        .expect("start the control plane");
    // The developer's group may edit in `default`, as a team would bind it.
    let bindings: Api<DynamicObject> = Api::namespaced_with(
        client(&server, false).await,
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            "rolebindings",
        ),
    );
    let binding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "developers-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": DEVELOPERS}]}))
    .expect("a RoleBinding");
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the developers");
    server
}

/// What deciding one request costs, measured alone (a million decisions, CPU-bound, so a
/// figure that barely depends on the machine's load): the developer's ConfigMap create as the
/// server decides it — the admin's impersonation checks, then the request through the group's
/// binding — with `others` unrelated RoleBindings in the index; and the admin's own request.
fn authorization_cost(others: usize) -> (Duration, Duration) {
    use axum::http::{HeaderMap, HeaderValue};
    use strata_apiserver::auth::UserInfo;
    use strata_apiserver::rbac::{Index, Kind, Rbac, authorize_request, bootstrap};
    let binding = |ns: &str, name: &str, kind: &str, subject: &str| {
        json!({"metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": subject}]})
    };
    let mut objects = bootstrap::objects();
    objects.push((
        Kind::RoleBinding,
        binding("default", "developers-edit", "Group", DEVELOPERS),
    ));
    for i in 0..others {
        objects.push((
            Kind::RoleBinding,
            binding(&format!("team-{i}"), "edit", "User", &format!("user-{i}")),
        ));
    }
    let rbac = Rbac::new(Index::build(objects.iter().map(|(k, o)| (*k, o))));
    let mut headers = HeaderMap::new();
    headers.insert("impersonate-user", HeaderValue::from_static(DEVELOPER));
    headers.insert("impersonate-group", HeaderValue::from_static(DEVELOPERS));
    let path = "/api/v1/namespaces/default/configmaps";
    let time = |headers: &HeaderMap| {
        const N: u32 = 1_000_000;
        let start = Instant::now();
        for _ in 0..N {
            let user = authorize_request(
                &rbac,
                Mode::Rbac,
                UserInfo::admin(),
                "POST",
                path,
                None,
                headers,
            )
            .expect("allowed");
            std::hint::black_box(user);
        }
        start.elapsed() / N
    };
    (time(&headers), time(&HeaderMap::new()))
}

fn median(mut v: Vec<(f64, Duration, Duration)>) -> (f64, Duration, Duration) {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v[v.len() / 2]
}

/// Events a resumed watch replays ([`watch_replay`]).
const REPLAYED: usize = 5_000;

/// A watch resumed from a version [`REPLAYED`] changes back, as a client that reconnects after
/// falling behind does: every event since comes from the server's history, whose events past
/// the newest few dozen hold their objects as JSON. The lines are counted, not decoded, so the
/// figure is the server's (and TLS's) cost; the median of 5.
async fn watch_replay(server: &Server) {
    use futures_util::AsyncBufReadExt;
    let client = client(server, false).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &configmaps());
    let head: u64 = api
        .list_metadata(&Default::default())
        .await
        .expect("a list")
        .metadata
        .resource_version
        .and_then(|rv| rv.parse().ok())
        .expect("the list's version");
    let from = head.saturating_sub(REPLAYED as u64).to_string();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let request = kube::core::Request::new("/api/v1/namespaces/default/configmaps")
            .watch(&kube::api::WatchParams::default().timeout(60), &from)
            .expect("a watch request");
        let (cpu, started) = (cpu_time(), Instant::now());
        let mut lines = client
            .request_stream(request)
            .await
            .expect("a watch")
            .lines();
        let mut seen = 0;
        while seen < REPLAYED {
            use futures_util::StreamExt;
            match lines.next().await {
                Some(Ok(line))
                    if line.contains("\"type\":\"MODIFIED\"")
                        || line.contains("\"type\":\"ADDED\"") =>
                {
                    seen += 1
                }
                Some(Ok(_)) => {}
                other => panic!("the watch ended after {seen} events: {other:?}"),
            }
        }
        runs.push((started.elapsed(), cpu_time().saturating_sub(cpu)));
    }
    runs.sort();
    let (took, cpu) = runs[runs.len() / 2];
    println!(
        "watch resumed {REPLAYED} events back: {took:.2?} ({:.0} events/s), CPU {cpu:.2?} (median of 5)",
        REPLAYED as f64 / took.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::temp_dir().join(format!("strata-http-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    for others in [0, 10_000] {
        let (developer, admin) = authorization_cost(others);
        println!(
            "authorization per request, {others} other bindings: developer (impersonated, through a group) {developer:.2?}, admin (system:masters) {admin:.2?}"
        );
    }
    let rbac = start(&base.join("rbac"), Mode::Rbac).await;
    let open = start(&base.join("open"), Mode::AlwaysAllow).await;
    let workloads: [(&str, usize, usize, bool); 4] = [
        ("creates, 1 client:  ", 1, 1_000, false),
        ("creates, 16 clients:", 16, 125, false),
        ("updates, 1 client:  ", 1, 1_000, true),
        ("updates, 16 clients:", 16, 125, true),
    ];
    for (label, clients, per_client, update) in workloads {
        let mut on = Vec::new();
        let mut off = Vec::new();
        for round in 0..ROUNDS {
            let prefix = format!("c{clients}-r{round}");
            // Alternate which server goes first, so neither gains from the order.
            if round % 2 == 0 {
                off.push(run_clients(&open, clients, per_client, &prefix, update).await);
                on.push(run_clients(&rbac, clients, per_client, &prefix, update).await);
            } else {
                on.push(run_clients(&rbac, clients, per_client, &prefix, update).await);
                off.push(run_clients(&open, clients, per_client, &prefix, update).await);
            }
        }
        let (off, on) = (median(off), median(on));
        println!(
            "HTTPS {label} RBAC off {:>7.0}/s p99 {:>9.2?} CPU/write {:>9.2?} | RBAC on {:>7.0}/s p99 {:>9.2?} CPU/write {:>9.2?} | on/off: rate {:.3}, p99 {:.3}, CPU {:.3}",
            off.0,
            off.1,
            off.2,
            on.0,
            on.1,
            on.2,
            on.0 / off.0,
            on.1.as_secs_f64() / off.1.as_secs_f64(),
            on.2.as_secs_f64() / off.2.as_secs_f64().max(f64::MIN_POSITIVE),
        );
    }
    watch_replay(&open).await;
    rbac.shutdown().await;
    open.shutdown().await;
    let _ = std::fs::remove_dir_all(&base);
}
