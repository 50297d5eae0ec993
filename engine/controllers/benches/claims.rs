//! The composition controllers at scale, in-process: the embedded control plane (durable, on
//! 127.0.0.1:0, temp data dir) and the controllers on one runtime. N claims each compose 5
//! objects in 2 waves: ConfigMaps `a` and `b`, then ConfigMaps `c`, `d` and a Secret `e` that
//! depend on them. Reports the time until every claim is Ready, the process CPU, the
//! controllers' API writes per claim by verb, the process's peak RSS and bytes per object, and
//! the CPU time and writes of one full resync of the converged state, and the CPU and writes of
//! 10 s of the converged state idle (the controllers running with nothing to do).
//!
//! Sizes: 1,000 and 10,000 claims by default, each in its own process (so each peak RSS is its
//! own), then printed side by side with the ratio of the last to the first.
//! `STRATA_BENCH_CLAIMS=1000` (or `=1000,10000,...`) chooses them. The sizes run 3 times,
//! alternating (`STRATA_BENCH_ROUNDS=N` for N), and the first size once more at the end, so
//! every round of the larger sizes is bracketed by a turn of the first before and after it
//! (1,000, 10,000, 1,000, 10,000, 1,000, 10,000, 1,000). A turn of the first size is 3 runs in a
//! row (`STRATA_BENCH_BASELINE_RUNS=N` for N), read as their median: a 1,000-claim convergence
//! lasts about 3 s, short enough for a few slow or fast seconds of the host to move its CPU per
//! claim by 15 % either way, where a 10,000 run spans half a minute. The table gives the median
//! of each figure; below it every round's ratios, the larger size against the mean of the two
//! turns of the first size around it: time and CPU move by several per cent between runs of one
//! binary here, more than the goals' margins, and the host's speed drifts over minutes, which a
//! baseline taken on both sides of the measured run cancels to first order.
//!
//! Time to Ready is process CPU over the cores the process got: beside it the cores used and the
//! cores the hypervisor gave other guests meanwhile (`steal` in `/proc/stat`), which stretch
//! the time on a shared host and not the CPU.
//!
//! The CPU until Ready is also split: the store's writer thread (its commits and fsyncs, read
//! from `/proc/self/task`) and the durable commits it made, with the writes per commit.
//!
//! Bytes per object: the growth of the resident set from just before the first claim to the
//! peak, divided by the objects the run added to the API server (claims, XRs, composed objects
//! and Events); beside it the average size of those objects as JSON.
//!
//! Where the memory goes: at the end every claim, XR, composed object and Event is listed and
//! sized as the API server holds it: a `serde_json` tree with its `managedFields` as one string
//! of their JSON, from the standard library's layouts ([`tree_bytes`]; the workspace forbids
//! `unsafe`, so a counting allocator is not an option).
//!
//! `STRATA_BENCH_BREAKDOWN=1` also watches claims, XRs, ConfigMaps, Secrets and Events during
//! the convergence and prints how many times each was created or changed per claim (the
//! watches cost memory, so the peak RSS of such a run is not the figure to quote).
//!
//! The full resync is forced by restarting the controllers (same settings, the default hourly
//! resync): on start they list everything and reconcile every XR and claim once. It is over when
//! the controllers' `/metrics` count at least N reconciles of each of the composite and claim
//! controllers and the write count has been still for a moment.
//!
//! `STRATA_BENCH_CONCURRENCY=N` overrides the controllers' per-controller concurrency (0: none).
//! `STRATA_BENCH_HISTORY=N` sets the API server's watch event history (default 10,000 events).
//! `STRATA_BENCH_TIMELINE=1` prints, every second of the convergence, the claims Ready, the
//! cores the process used and the store writer's share of them.
//! `STRATA_BENCH_CREATE_FIRST=1` creates every claim with the controllers stopped and starts
//! them once the last is stored: the creation's CPU apart from the convergence's.
//! `RUST_LOG` (as `strata up` reads it) prints the API server's and the controllers' logs.
//!
//! A convergence that stops (no claim turning Ready for 15 s) prints what the API server holds
//! for a few claims that are not Ready, and their XRs.
//!
//! Run: `cargo bench -p strata-controllers --bench claims`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

// The allocator the `strata` binary (and so `strata up`) runs with, so the peak RSS is its.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use strata_apiserver::writes::WriteCounts;
use strata_controllers::Settings;
use strata_controllers::kinds::Kinds;
use strata_test_support::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMESPACE: &str = "bench";
const COMPOSED: usize = 5;
/// Clients creating claims at the same time.
const CREATORS: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(1800);

/// The controllers running in-process, stopped by [`Controllers::stop`].
struct Controllers {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Controllers {
    fn start(client: kube::Client, metrics: SocketAddr) -> Self {
        let mut settings = Settings {
            metrics_addr: Some(metrics),
            ..Settings::default()
        };
        if let Ok(v) = std::env::var("STRATA_BENCH_CONCURRENCY") {
            settings.concurrency = v
                .parse()
                .expect("STRATA_BENCH_CONCURRENCY must be a number");
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = strata_controllers::run(client, settings, shutdown).await {
                panic!("controllers failed: {e}");
            }
        });
        Controllers { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn xrd() -> Value {
    json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "CompositeResourceDefinition",
        "metadata": {"name": "xbenches.example.org"},
        "spec": {
            "group": "example.org",
            "names": {"kind": "XBench", "plural": "xbenches"},
            "claimNames": {"kind": "Bench", "plural": "benches"},
            "versions": [{
                "name": "v1", "served": true, "referenceable": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "string"}}},
                }}},
            }],
        },
    })
}

/// Wave 1: ConfigMaps `a`, `b`; wave 2: ConfigMaps `c`, `d` and Secret `e`, each depending on
/// both of wave 1. Every object goes to the claim's namespace and is ready once it exists.
fn composition() -> Value {
    let ns_patch = json!({"type": "FromCompositeFieldPath", "fromFieldPath": "metadata.labels[strata.dev/claim-namespace]", "toFieldPath": "metadata.namespace"});
    let size_patch = json!({"fromFieldPath": "spec.size", "toFieldPath": "data.size"});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}, "data": {}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "default"}, "data": {"token": "aGVsbG8="}});
    let none = json!([{"type": "None"}]);
    let wave1 = |name: &str| json!({"name": name, "base": cm, "patches": [ns_patch, size_patch], "readinessChecks": none});
    let wave2 = |name: &str, base: &Value| json!({"name": name, "dependsOn": ["a", "b"], "base": base, "patches": [ns_patch], "readinessChecks": none});
    json!({
        "apiVersion": "apiextensions.strata.dev/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": "bench"},
        "spec": {
            "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XBench"},
            "resources": [wave1("a"), wave1("b"), wave2("c", &cm), wave2("d", &cm), wave2("e", &secret)],
        },
    })
}

fn claim(i: usize) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.org/v1", "kind": "Bench",
        "metadata": {"name": format!("claim-{i}"), "namespace": NAMESPACE},
        "spec": {"size": "small", "compositionRef": {"name": "bench"}},
    }))
    .unwrap()
}

fn is_true(obj: &Value, condition: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == condition && c["status"] == "True")
        })
}

/// The API resource serving `api_version`/`kind`, once discovery offers it.
async fn resource(kinds: &Kinds, api_version: &str, kind: &str) -> ApiResource {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match kinds.resolve(api_version, kind).await {
            Ok(k) => return k.resource,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{api_version}/{kind} never served: {e}"
                );
                kinds.forget(api_version, kind);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn apply(client: &kube::Client, kinds: &Kinds, object: &Value) {
    let s = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap();
    let r = resource(kinds, s("/apiVersion"), s("/kind")).await;
    let api: Api<DynamicObject> = match object.pointer("/metadata/namespace") {
        Some(Value::String(ns)) => Api::namespaced_with(client.clone(), ns, &r),
        _ => Api::all_with(client.clone(), &r),
    };
    api.patch(
        s("/metadata/name"),
        &PatchParams::apply("bench").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap();
}

/// Polls `check` every `every` until it is true; panics after [`TIMEOUT`].
async fn wait_until(what: &str, every: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// Returns once `n` claims are Ready, as a watch tells (a list per poll would cost the bench
/// more per claim the more claims there are).
async fn every_claim_ready(claims: Api<DynamicObject>, n: usize, count: Arc<AtomicUsize>) {
    let stream = watcher(claims, watcher::Config::default());
    futures_util::pin_mut!(stream);
    let mut ready = std::collections::HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => {
                let name = c.metadata.name.clone().unwrap_or_default();
                if is_true(&c.data, "Ready") {
                    ready.insert(name);
                } else {
                    ready.remove(&name);
                }
            }
            Ok(watcher::Event::Delete(c)) => {
                ready.remove(&c.metadata.name.clone().unwrap_or_default());
            }
            Ok(_) | Err(_) => {}
        }
        count.store(ready.len(), Ordering::Relaxed);
        if ready.len() == n {
            return;
        }
    }
}

/// When no claim has turned Ready for [`STALL`], prints what the API server holds for a few
/// claims that are not Ready, and their XRs (once): a convergence that stops is a defect to
/// diagnose, not a benchmark figure.
async fn report_stall(
    xrs: Api<DynamicObject>,
    claims: Api<DynamicObject>,
    ready: Arc<AtomicUsize>,
) {
    let mut last = (ready.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = ready.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
            continue;
        }
        if last.1.elapsed() < STALL {
            continue;
        }
        let Ok(list) = claims.list(&ListParams::default()).await else {
            continue;
        };
        let not_ready: Vec<_> = list
            .items
            .iter()
            .filter(|c| !is_true(&c.data, "Ready"))
            .collect();
        eprintln!(
            "stalled: {now} claims seen Ready by the watch for {} s; the API server lists {} \
             claims, {} not Ready",
            STALL.as_secs(),
            list.items.len(),
            not_ready.len()
        );
        for c in not_ready.iter().take(3) {
            eprintln!(
                "  claim {}: rv {} status {}",
                c.metadata.name.as_deref().unwrap_or_default(),
                c.metadata.resource_version.as_deref().unwrap_or_default(),
                c.data.get("status").cloned().unwrap_or_default()
            );
            eprintln!(
                "    spec {}",
                c.data.get("spec").cloned().unwrap_or_default()
            );
            let xr = c
                .data
                .pointer("/spec/resourceRef/name")
                .and_then(Value::as_str);
            if let Some(xr) = xr {
                match xrs.get(xr).await {
                    Ok(x) => eprintln!(
                        "    XR {xr}: rv {} status {}",
                        x.metadata.resource_version.as_deref().unwrap_or_default(),
                        x.data.get("status").cloned().unwrap_or_default()
                    ),
                    Err(e) => eprintln!("    XR {xr}: {e}"),
                }
            }
        }
        return;
    }
}

/// How long no claim turning Ready counts as a stalled convergence.
const STALL: Duration = Duration::from_secs(15);

/// With `STRATA_BENCH_TIMELINE=1`, prints every second: claims Ready, the cores the process
/// used and the store writer's share of them (and a line when the first claim is created and
/// when the last turns Ready: marks for a profiler to start and stop by).
fn timeline(ready: Arc<AtomicUsize>) -> Option<tokio::task::JoinHandle<()>> {
    if std::env::var("STRATA_BENCH_TIMELINE").ok()? != "1" {
        return None;
    }
    Some(tokio::spawn(async move {
        let started = Instant::now();
        let (mut cpu, mut writer) = (cpu_time(), store_writer_cpu_time());
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (c, w) = (cpu_time(), store_writer_cpu_time());
            eprintln!(
                "t {:5.1} s  ready {:6}  cores {:.2}  writer {:.2}",
                started.elapsed().as_secs_f64(),
                ready.load(Ordering::Relaxed),
                c.saturating_sub(cpu).as_secs_f64(),
                w.saturating_sub(writer).as_secs_f64()
            );
            (cpu, writer) = (c, w);
        }
    }))
}

/// A field of `/proc/self/status`, in kB.
fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// The command name and user + system CPU time in a `stat` line of `/proc` (fields 2, 14, 15).
fn stat_cpu(stat: &str) -> (&str, Duration) {
    // The command name is parenthesized and may contain spaces: split after it.
    let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
    let fields: Vec<u64> = stat[close + 2..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of the line are at 11 and 12 after the command name; USER_HZ is 100.
    let ticks = fields[11] + fields[12];
    (&stat[open + 1..close], Duration::from_millis(ticks * 10))
}

/// User + system CPU time of the whole process.
fn cpu_time() -> Duration {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap()).1
}

/// CPU time the hypervisor gave other guests while this machine's CPUs wanted it (`steal` in
/// `/proc/stat`, all CPUs together): on a shared host, time to Ready stretches by it while CPU
/// time does not.
fn host_steal_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let steal = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .and_then(|l| l.split_whitespace().nth(7)?.parse::<u64>().ok())
        .unwrap_or(0);
    // USER_HZ is 100.
    Duration::from_millis(steal * 10)
}

/// CPU time of the store's writer thread (named `strata-store-writer`; Linux shows the first
/// 15 bytes of a thread's name), from `/proc/self/task/*/stat`.
fn store_writer_cpu_time() -> Duration {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        // A thread that ended meanwhile has no stat to read.
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| match stat_cpu(&stat) {
            (name, cpu) if "strata-store-writer".starts_with(name) => cpu,
            _ => Duration::ZERO,
        })
        .sum()
}

/// Reconciles the controllers have run, per controller, read from their `/metrics`.
async fn reconciles(metrics: SocketAddr, controller: &str) -> u64 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(metrics).await else {
        return 0;
    };
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {metrics}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut body = String::new();
    if stream.read_to_string(&mut body).await.is_err() {
        return 0;
    }
    let prefix = format!("strata_reconciles_total{{controller=\"{controller}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Counts the changes (creations and updates, seen on a watch) to objects of one resource.
struct Changes {
    label: &'static str,
    count: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Changes {
    fn watch(label: &'static str, api: Api<DynamicObject>) -> Self {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let task = tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default());
            futures_util::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Ok(watcher::Event::Apply(_)) = event {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Changes { label, count, task }
    }
}

/// Watches, per resource, that show where the writes went (`STRATA_BENCH_BREAKDOWN=1`).
async fn watch_changes(client: &kube::Client, kinds: &Kinds) -> Vec<Changes> {
    let mut all = Vec::new();
    for (label, api_version, kind) in [
        ("claims", "example.org/v1", "Bench"),
        ("XRs", "example.org/v1", "XBench"),
        ("ConfigMaps", "v1", "ConfigMap"),
        ("Secrets", "v1", "Secret"),
        ("Events", "events.k8s.io/v1", "Event"),
    ] {
        let r = resource(kinds, api_version, kind).await;
        all.push(Changes::watch(label, Api::all_with(client.clone(), &r)));
    }
    all
}

/// One kind's objects as the API server holds them: how many, and per object the bytes of its
/// JSON, of the `serde_json` tree it is held as ([`tree_bytes`]; `managedFields` as the string
/// of their JSON), and of that `managedFields` string.
struct Held {
    label: &'static str,
    count: usize,
    json: usize,
    tree: usize,
    managed_fields: usize,
    /// For the kinds the XR and claim controllers cache (claims and XRs): the bytes of their
    /// cached copies as held ([`cached_bytes`]), and as whole trees without managedFields.
    cached: Option<(usize, usize)>,
}

/// The heap bytes of an object as the XR and claim controllers cache it
/// (`strata_controllers::cached::Cached`): its metadata without managedFields (counted as a
/// tree, an upper bound for the typed struct) and the rest as one string of JSON.
fn cached_bytes(value: &Value) -> usize {
    let Some(object) = value.as_object() else {
        return 0;
    };
    object
        .iter()
        .map(|(k, v)| match k.as_str() {
            "metadata" | "apiVersion" | "kind" => tree_bytes(v),
            _ => k.len() + 3 + serde_json::to_string(v).map_or(0, |s| s.len()),
        })
        .sum()
}

/// The heap bytes a `serde_json` tree asks the allocator for, from the standard library's
/// layouts: a map is a B-tree whose every node has room for 11 entries (a key `String` of 24
/// bytes and a `Value` of 32, so 632 bytes a leaf, 728 an inner node; a map of more than 11
/// entries is counted as leaves half full plus one inner node per 12 of them), strings hold
/// their length, arrays the capacity growth by doubling gives them.
fn tree_bytes(v: &Value) -> usize {
    const LEAF: usize = 632;
    const INNER: usize = 728;
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => {
            let capacity = if a.is_empty() {
                0
            } else {
                a.len().next_power_of_two().max(4)
            };
            capacity * 32 + a.iter().map(tree_bytes).sum::<usize>()
        }
        Value::Object(m) => {
            let nodes = match m.len() {
                0 => 0,
                1..=11 => LEAF,
                n => {
                    let leaves = n.div_ceil(6);
                    leaves * LEAF + leaves.div_ceil(12) * INNER
                }
            };
            nodes
                + m.iter()
                    .map(|(k, v)| k.len() + tree_bytes(v))
                    .sum::<usize>()
        }
        _ => 0,
    }
}

/// Lists every object of the kinds the run adds and sizes each as the API server holds it.
async fn held(client: &kube::Client, kinds: &Kinds) -> Vec<Held> {
    let mut out = Vec::new();
    for (label, api_version, kind, cached) in [
        ("claims", "example.org/v1", "Bench", true),
        ("XRs", "example.org/v1", "XBench", true),
        ("ConfigMaps", "v1", "ConfigMap", false),
        ("Secrets", "v1", "Secret", false),
        ("Events", "v1", "Event", false),
    ] {
        let r = resource(kinds, api_version, kind).await;
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &r);
        let items = api.list(&ListParams::default()).await.unwrap().items;
        let mut h = Held {
            label,
            count: items.len(),
            json: 0,
            tree: 0,
            managed_fields: 0,
            cached: cached.then_some((0, 0)),
        };
        for item in items {
            let mut value = serde_json::to_value(&item).unwrap();
            h.json += serde_json::to_vec(&value).unwrap().len();
            if let Some((packed, whole)) = &mut h.cached {
                let mut slim = value.clone();
                if let Some(m) = slim.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                *packed += cached_bytes(&slim);
                *whole += tree_bytes(&slim);
            }
            if let Some(mf) = value
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .and_then(|m| m.get_mut("managedFields"))
            {
                // Held as one string of their JSON.
                *mf = Value::String(serde_json::to_string(mf).unwrap());
                h.managed_fields += tree_bytes(mf) + "managedFields".len();
            }
            h.tree += tree_bytes(&value);
        }
        out.push(h);
    }
    out
}

fn per_claim(w: &WriteCounts, n: usize) -> String {
    let n = n as f64;
    format!(
        "POST {:.1}, PATCH {:.1}, PUT {:.1}, DELETE {:.1} (total {:.1})",
        w.post as f64 / n,
        w.patch as f64 / n,
        w.put as f64 / n,
        w.delete as f64 / n,
        w.total() as f64 / n
    )
}

async fn bench(n: usize) {
    let dir = TempDir::new("bench-claims");
    let mut config =
        strata_apiserver::ServerConfig::new(dir.0.join("data"), "127.0.0.1:0".parse().unwrap());
    if let Ok(v) = std::env::var("STRATA_BENCH_HISTORY") {
        config.event_history = positive_count("STRATA_BENCH_HISTORY", &v) as u64;
    }
    let server = strata_apiserver::Server::start(config).await.unwrap();
    let client = strata_controllers::client(Some(server.kubeconfig_path()))
        .await
        .unwrap();
    let kinds = Kinds::new(client.clone());
    let metrics = strata_test_support::free_addr();
    let controllers = Controllers::start(client.clone(), metrics);

    apply(
        &client,
        &kinds,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    .await;
    apply(&client, &kinds, &xrd()).await;
    apply(&client, &kinds, &composition()).await;
    let claims_resource = resource(&kinds, "example.org/v1", "Bench").await;
    let claims: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &claims_resource);
    // The composition controller has snapshotted the Composition before any claim arrives.
    let revisions_resource = resource(
        &kinds,
        "apiextensions.strata.dev/v1alpha1",
        "CompositionRevision",
    )
    .await;
    let revisions: Api<DynamicObject> = Api::all_with(client.clone(), &revisions_resource);
    wait_until(
        "the CompositionRevision",
        Duration::from_millis(100),
        async || {
            revisions
                .list(&ListParams::default())
                .await
                .is_ok_and(|l| !l.items.is_empty())
        },
    )
    .await;
    let xrds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            &kinds,
            "apiextensions.strata.dev/v1alpha1",
            "CompositeResourceDefinition",
        )
        .await,
    );
    wait_until(
        "the XRD to be offered",
        Duration::from_millis(100),
        async || {
            xrds.get("xbenches.example.org")
                .await
                .is_ok_and(|x| is_true(&x.data, "Established") && is_true(&x.data, "Offered"))
        },
    )
    .await;

    let breakdown = match std::env::var("STRATA_BENCH_BREAKDOWN") {
        Ok(v) if v == "1" => watch_changes(&client, &kinds).await,
        _ => Vec::new(),
    };
    // `STRATA_BENCH_CREATE_FIRST=1`: every claim is created with the controllers stopped, and
    // they start once the last one is stored, so the creation's own CPU is measured apart.
    let create_first = std::env::var("STRATA_BENCH_CREATE_FIRST").is_ok_and(|v| v == "1");
    let running = if create_first {
        controllers.stop().await;
        None
    } else {
        Some(controllers)
    };
    let before = server.write_counts();
    let objects_before = server.object_stats();
    let rss_before_kb = proc_status_kb("VmRSS");
    let cpu_at_start = cpu_time();
    let writer_cpu_at_start = store_writer_cpu_time();
    let commits_at_start = server.commit_stats();
    let steal_at_start = host_steal_time();
    let started = Instant::now();
    let ready_count = Arc::new(AtomicUsize::new(0));
    let all_ready = tokio::spawn(every_claim_ready(claims.clone(), n, ready_count.clone()));
    let timeline = timeline(ready_count.clone());
    let xrs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(&kinds, "example.org/v1", "XBench").await,
    );
    let stall = tokio::spawn(report_stall(xrs, claims.clone(), ready_count.clone()));
    if timeline.is_some() {
        eprintln!("t   0.0 s  creating {n} claims");
    }
    let next = Arc::new(AtomicUsize::new(0));
    // `STRATA_BENCH_RATE`: claims created per second at most (all clients together).
    let rate = std::env::var("STRATA_BENCH_RATE")
        .ok()
        .map(|v| positive_count("STRATA_BENCH_RATE", &v) as f64);
    let creators: Vec<_> = (0..CREATORS)
        .map(|_| {
            let claims = claims.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    if let Some(rate) = rate {
                        let at = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(at.into()).await;
                    }
                    claims
                        .create(&PostParams::default(), &claim(i))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for c in creators {
        c.await.unwrap();
    }
    let created_in = started.elapsed();
    let creation_cpu = cpu_time().saturating_sub(cpu_at_start);
    let controllers = running.unwrap_or_else(|| Controllers::start(client.clone(), metrics));
    tokio::time::timeout(TIMEOUT, all_ready)
        .await
        .expect("timed out waiting for every claim to be Ready")
        .unwrap();
    let ready_in = started.elapsed();
    stall.abort();
    if let Some(t) = timeline {
        t.abort();
        eprintln!("t {:5.1} s  all {n} Ready", ready_in.as_secs_f64());
    }
    let ready_cpu = cpu_time().saturating_sub(cpu_at_start);
    let stolen = host_steal_time().saturating_sub(steal_at_start);
    let writer_cpu = store_writer_cpu_time().saturating_sub(writer_cpu_at_start);
    let commits = {
        let now = server.commit_stats();
        (now.0 - commits_at_start.0, now.1 - commits_at_start.1)
    };
    let writes_per_commit = commits.1 as f64 / commits.0.max(1) as f64;
    // Writes still in flight when the last claim turned Ready are the convergence's too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The bench's own writes are the N claim creations.
    let passes = (
        reconciles(metrics, strata_controllers::xr::CONTROLLER).await as f64 / n as f64,
        reconciles(metrics, strata_controllers::claim::CONTROLLER).await as f64 / n as f64,
    );
    let mut converge = server.write_counts().since(&before);
    converge.post = converge.post.saturating_sub(n as u64);
    let peak_rss_kb = proc_status_kb("VmHWM");
    let objects_after = server.object_stats();
    let objects_added = objects_after
        .objects
        .saturating_sub(objects_before.objects)
        .max(1);
    let bytes_per_object =
        (peak_rss_kb.saturating_sub(rss_before_kb) * 1024) as f64 / objects_added as f64;
    let json_per_object = objects_after
        .json_bytes
        .saturating_sub(objects_before.json_bytes) as f64
        / objects_added as f64;
    let changes: Vec<String> = breakdown
        .into_iter()
        .map(|c| {
            c.task.abort();
            let changed = c.count.load(Ordering::Relaxed) as f64 / n as f64;
            format!("{} {changed:.1}", c.label)
        })
        .collect();

    let rss_converged_kb = proc_status_kb("VmRSS");
    // Idle: the converged state, the controllers running with nothing to do.
    let idle_writes_before = server.write_counts();
    let idle_cpu_before = cpu_time();
    tokio::time::sleep(IDLE).await;
    let idle_cpu = cpu_time().saturating_sub(idle_cpu_before);
    let idle_writes = server.write_counts().since(&idle_writes_before);
    controllers.stop().await;
    let before_resync = server.write_counts();
    let cpu_before = cpu_time();
    let resync_started = Instant::now();
    let controllers = Controllers::start(client.clone(), metrics);
    wait_until("a full resync", Duration::from_millis(200), async || {
        reconciles(metrics, strata_controllers::xr::CONTROLLER).await >= n as u64
            && reconciles(metrics, strata_controllers::claim::CONTROLLER).await >= n as u64
    })
    .await;
    let mut last = server.write_counts();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = server.write_counts();
        if now == last {
            break;
        }
        last = now;
    }
    let resync_cpu = cpu_time().saturating_sub(cpu_before);
    let resync_wall = resync_started.elapsed();
    // The peak so far includes the resync; what `held` lists afterwards is the bench's own.
    let resync_peak_rss_kb = proc_status_kb("VmHWM");
    let resync_writes = server.write_counts().since(&before_resync);
    controllers.stop().await;
    let held = held(&client, &kinds).await;
    server.shutdown().await;

    println!("claims: {n} ({COMPOSED} composed objects each, 2 waves)");
    println!(
        "claims created in: {:.1} s ({CREATORS} clients; process CPU meanwhile {:.1} s, {:.2} ms \
         per claim{})",
        created_in.as_secs_f64(),
        creation_cpu.as_secs_f64(),
        creation_cpu.as_secs_f64() * 1000.0 / n as f64,
        if create_first {
            ", the controllers stopped"
        } else {
            ""
        }
    );
    println!(
        "time to all Ready: {:.1} s (process CPU {:.1} s: controllers, API server and the bench)",
        ready_in.as_secs_f64(),
        ready_cpu.as_secs_f64()
    );
    println!(
        "cores used: {:.2}; meanwhile the host gave other guests {:.2} of this machine's cores (steal)",
        ready_cpu.as_secs_f64() / ready_in.as_secs_f64(),
        stolen.as_secs_f64() / ready_in.as_secs_f64()
    );
    println!(
        "of it the store's writer thread: {:.1} s, {} durable commits of {:.1} writes each",
        writer_cpu.as_secs_f64(),
        commits.0,
        writes_per_commit
    );
    println!("API writes per claim: {}", per_claim(&converge, n));
    println!(
        "reconciles per claim: composite {:.1}, claim {:.1}",
        passes.0, passes.1
    );
    if !changes.is_empty() {
        println!(
            "changes per claim seen on watches: {} (the claim creation included)",
            changes.join(", ")
        );
    }
    println!(
        "peak RSS: {} MB; objects added: {objects_added}, {bytes_per_object:.0} bytes of RSS each \
         ({json_per_object:.0} bytes as JSON)",
        peak_rss_kb / 1024
    );
    println!(
        "RSS: {} MB before the claims, {} MB converged",
        rss_before_kb / 1024,
        rss_converged_kb / 1024
    );
    let mb = |b: usize| b as f64 / 1e6;
    let trees: usize = held.iter().map(|h| h.tree).sum();
    let managed: usize = held.iter().map(|h| h.managed_fields).sum();
    println!(
        "where the memory goes: RSS {} MB converged; the API server's objects as trees: {:.0} MB, \
         managedFields {:.0} MB of it",
        rss_converged_kb / 1024,
        mb(trees),
        mb(managed)
    );
    let (packed, whole) = held
        .iter()
        .filter_map(|h| h.cached)
        .fold((0, 0), |(p, w), (a, b)| (p + a, w + b));
    println!(
        "the XR and claim controllers' caches: {:.0} MB (as whole trees they would be {:.0} MB)",
        mb(packed),
        mb(whole)
    );
    for h in &held {
        let each = |b: usize| b as f64 / h.count.max(1) as f64;
        println!(
            "    {:<10} {:>6} objects, each: JSON {:>5.0} B, tree {:>6.0} B, of it managedFields {:>5.0} B{}",
            h.label,
            h.count,
            each(h.json),
            each(h.tree),
            each(h.managed_fields),
            h.cached.map_or(String::new(), |(packed, whole)| format!(
                "; cached by the controllers {:.0} B (as a tree {:.0} B)",
                each(packed),
                each(whole)
            )),
        );
    }
    println!(
        "idle (converged, controllers running): CPU {:.0} ms over {} s, writes {}",
        idle_cpu.as_secs_f64() * 1000.0,
        IDLE.as_secs(),
        idle_writes.total()
    );
    println!(
        "full resync (controllers restarted): CPU {:.1} s over {:.1} s wall, writes {} \
         (POST {}, PATCH {}, PUT {}, DELETE {}); peak RSS through it {} MB",
        resync_cpu.as_secs_f64(),
        resync_wall.as_secs_f64(),
        resync_writes.total(),
        resync_writes.post,
        resync_writes.patch,
        resync_writes.put,
        resync_writes.delete,
        resync_peak_rss_kb / 1024
    );
    let figures = json!({
        "claims": n,
        "ready_s": ready_in.as_secs_f64(),
        "cpu_s": ready_cpu.as_secs_f64(),
        "cpu_ms_per_claim": ready_cpu.as_secs_f64() * 1000.0 / n as f64,
        "creation_cpu_ms_per_claim": creation_cpu.as_secs_f64() * 1000.0 / n as f64,
        "writer_cpu_ms_per_claim": writer_cpu.as_secs_f64() * 1000.0 / n as f64,
        "writes_per_commit": writes_per_commit,
        "cores_used": ready_cpu.as_secs_f64() / ready_in.as_secs_f64(),
        "steal_cores": stolen.as_secs_f64() / ready_in.as_secs_f64(),
        "peak_rss_mb": peak_rss_kb / 1024,
        "bytes_per_object": bytes_per_object,
        "json_bytes_per_object": json_per_object,
        "writes_per_claim": converge.total() as f64 / n as f64,
        "resync_cpu_s": resync_cpu.as_secs_f64(),
        "resync_cpu_ms_per_claim": resync_cpu.as_secs_f64() * 1000.0 / n as f64,
        "resync_writes": resync_writes.total(),
        "idle_cpu_ms": idle_cpu.as_secs_f64() * 1000.0,
        "idle_cpu_us_per_claim_s": idle_cpu.as_secs_f64() * 1e6 / n as f64 / IDLE.as_secs_f64(),
        "idle_writes": idle_writes.total(),
        "object_trees_mb": trees / 1_000_000,
        "managed_fields_mb": managed / 1_000_000,
    });
    println!("{FIGURES}{figures}");
}

/// The line a size's run ends with, read by the run that prints the table.
const FIGURES: &str = "figures: ";

/// How long the converged state is watched idle.
const IDLE: Duration = Duration::from_secs(10);

/// Runs each size in a child process, `rounds` times alternating sizes (1,000, 10,000, 1,000,
/// 10,000, …), then the first size once more, and prints the median of each figure side by
/// side with the ratio of the last size to the first, then the ratios of each round (the last
/// size against the first size's turns before and after it). With more than one size, each turn
/// of the first size is `baseline_runs` runs in a row, read as their median.
fn compare(sizes: &[usize], rounds: usize, baseline_runs: usize) {
    let exe = std::env::current_exe().unwrap();
    // runs[size][turn][run]; the first size has one turn more, closing the last round.
    let mut runs: Vec<Vec<Vec<Value>>> = vec![Vec::new(); sizes.len()];
    let bracketed = sizes.len() > 1;
    let schedule = (1..=rounds)
        .flat_map(|round| (0..sizes.len()).map(move |i| (round, i)))
        .chain(bracketed.then_some((rounds + 1, 0)));
    for (round, i) in schedule {
        let n = sizes[i];
        let turn = if round > rounds {
            format!("closing round {rounds}")
        } else {
            format!("round {round} of {rounds}")
        };
        let repeats = if bracketed && i == 0 {
            baseline_runs
        } else {
            1
        };
        let mut turn_runs = Vec::new();
        for run in 1..=repeats {
            if repeats > 1 {
                println!("--- {n} claims ({turn}, run {run} of {repeats})");
            } else {
                println!("--- {n} claims ({turn})");
            }
            turn_runs.push(run_one(&exe, n));
        }
        runs[i].push(turn_runs);
    }
    let figure = |run: &Value, key: &str| run[key].as_f64().unwrap_or(0.0);
    // A turn's figure: the median of its runs (a turn of the larger sizes is one run).
    let of_turn =
        |turn: &[Value], key: &str| median_of(turn.iter().map(|r| figure(r, key)).collect());
    let median = |size: &[Vec<Value>], key: &str| {
        median_of(size.iter().map(|turn| of_turn(turn, key)).collect())
    };
    let rows: [(&str, &str, usize); 18] = [
        ("time to all Ready (s)", "ready_s", 1),
        ("process CPU (s)", "cpu_s", 1),
        ("  cores used", "cores_used", 2),
        ("  cores stolen by the host", "steal_cores", 2),
        ("CPU per claim (ms)", "cpu_ms_per_claim", 1),
        ("  while creating (ms)", "creation_cpu_ms_per_claim", 2),
        ("  store writer (ms)", "writer_cpu_ms_per_claim", 2),
        ("  writes per commit", "writes_per_commit", 1),
        ("peak RSS (MB)", "peak_rss_mb", 0),
        ("bytes per object (RSS)", "bytes_per_object", 0),
        ("bytes per object (JSON)", "json_bytes_per_object", 0),
        ("API writes per claim", "writes_per_claim", 1),
        ("resync CPU (s)", "resync_cpu_s", 1),
        ("resync CPU per claim (ms)", "resync_cpu_ms_per_claim", 2),
        ("idle CPU in 10 s (ms)", "idle_cpu_ms", 1),
        ("idle CPU per claim (µs/s)", "idle_cpu_us_per_claim_s", 3),
        ("API server trees (MB)", "object_trees_mb", 0),
        ("  managedFields (MB)", "managed_fields_mb", 0),
    ];
    let header: Vec<String> = sizes.iter().map(|n| format!("{n} claims")).collect();
    println!();
    if rounds > 1 || bracketed {
        let turns = runs[0].len();
        let each = if bracketed && baseline_runs > 1 {
            format!(", each the median of {baseline_runs} runs")
        } else {
            String::new()
        };
        println!(
            "medians of {rounds} rounds ({turns} turns of {} claims{each}):",
            sizes[0]
        );
    }
    println!(
        "{:<26} {}  last/first",
        "",
        header
            .iter()
            .map(|h| format!("{h:>14}"))
            .collect::<String>()
    );
    for (label, key, digits) in rows {
        let values: Vec<f64> = runs.iter().map(|size| median(size, key)).collect();
        let cells: String = values
            .iter()
            .map(|v| format!("{:>14}", format!("{v:.digits$}")))
            .collect();
        let ratio = match (values.first(), values.last()) {
            (Some(a), Some(b)) if *a > 0.0 && values.len() > 1 => format!("{:.2}", b / a),
            _ => String::new(),
        };
        println!("{label:<26} {cells}  {ratio:>10}");
    }
    if bracketed {
        // Each round's last size against the mean of the first size's turns just before and
        // just after it.
        for (label, key) in [
            ("time to all Ready", "ready_s"),
            ("CPU per claim", "cpu_ms_per_claim"),
            ("resync CPU per claim", "resync_cpu_ms_per_claim"),
        ] {
            let ratios: Vec<f64> = (0..rounds)
                .map(|r| {
                    let first = (of_turn(&runs[0][r], key) + of_turn(&runs[0][r + 1], key)) / 2.0;
                    of_turn(&runs[sizes.len() - 1][r], key) / first.max(f64::MIN_POSITIVE)
                })
                .collect();
            let median = median_of(ratios.clone());
            let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            println!(
                "{label}, last / first around it, by round: {} (median {median:.2})",
                listed.join(", ")
            );
        }
    }
    let listed = |key: &str| {
        runs.iter()
            .flatten()
            .flatten()
            .map(|r| r[key].to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "resync writes: {}; idle writes: {}",
        listed("resync_writes"),
        listed("idle_writes")
    );
}

/// One run of `n` claims in a child process: its figures.
fn run_one(exe: &std::path::Path, n: usize) -> Value {
    let out = std::process::Command::new(exe)
        .env("STRATA_BENCH_CLAIMS", n.to_string())
        .env("STRATA_BENCH_ONE", "1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    assert!(out.status.success(), "the run of {n} claims failed");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(FIGURES))
        .expect("the run printed its figures");
    serde_json::from_str(line).unwrap()
}

/// The median of `values` (the mean of the middle two when there is an even number).
fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

/// A positive count from the environment variable `var`, or a panic naming it.
fn positive_count(var: &str, value: &str) -> usize {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            panic!("{var} must be a positive count (or, for sizes, a list of them), not {value:?}")
        })
}

fn main() {
    // As `strata up` runs: the allocator keeps freed memory and maps huge pages, unless
    // `MIMALLOC_*` variables say otherwise (`strata_controllers::process`).
    strata_controllers::process::tune_memory();
    // `RUST_LOG` (e.g. `kube_runtime=debug`): the controllers' and API server's logs on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let sizes: Vec<usize> = match std::env::var("STRATA_BENCH_CLAIMS") {
        Ok(v) => v
            .split(',')
            .map(|n| positive_count("STRATA_BENCH_CLAIMS", n))
            .collect(),
        Err(_) => vec![1000, 10_000],
    };
    if std::env::var_os("STRATA_BENCH_ONE").is_none() {
        let rounds = std::env::var("STRATA_BENCH_ROUNDS")
            .map_or(3, |v| positive_count("STRATA_BENCH_ROUNDS", &v));
        let baseline_runs = std::env::var("STRATA_BENCH_BASELINE_RUNS")
            .map_or(3, |v| positive_count("STRATA_BENCH_BASELINE_RUNS", &v));
        compare(&sizes, rounds, baseline_runs);
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench(sizes[0]));
}
