//! Durable throughput of the embedded control plane's object layer (store + semantics, no HTTP):
//! creates/s and updates/s with 1 and 16 concurrent writers, list latency over 10,000 objects,
//! watch fan-out to 50 watchers, and resident memory per 10,000 objects.
//!
//! Durable writes are grouped: each line of writers prints the writes per durable commit (one
//! fsync each), next to the disk's own fsync rate measured first in the same data dir.
//!
//! Run: `cargo bench -p strata-apiserver --bench throughput`

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use strata_apiserver::cluster::{Cluster, Target};
use strata_apiserver::selector::Selector;
use strata_apiserver::store::Store;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn configmap(name: &str, value: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"value": value.to_string(), "payload": "x".repeat(200)}})
}

/// The disk's own rate of small durable writes in `dir`: 4 KiB rewritten and `fdatasync`ed, for
/// about a second.
fn disk_fsyncs_per_second(dir: &std::path::Path) -> f64 {
    use std::io::{Seek, Write};
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("probe file");
    let block = vec![7u8; 4096];
    let began = Instant::now();
    let mut n = 0u64;
    while began.elapsed() < Duration::from_secs(1) {
        file.seek(std::io::SeekFrom::Start(0)).expect("seek");
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        n += 1;
    }
    let rate = n as f64 / began.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

async fn run_writers(
    cluster: &Arc<Cluster>,
    t: &Target,
    writers: usize,
    per_writer: usize,
    prefix: &str,
    update: bool,
) -> (f64, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let cluster = cluster.clone();
        let t = t.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let name = format!("{prefix}-{w}-{i}");
                let began = Instant::now();
                if update {
                    let patch =
                        json!({"data": {"value": format!("u{}", began.elapsed().as_nanos())}})
                            .to_string();
                    cluster
                        .patch(
                            &t,
                            &name,
                            strata_apiserver::patch::PatchKind::Merge,
                            patch.as_bytes(),
                            strata_apiserver::cluster::Subresource::Main,
                            Some("bench"),
                            false,
                        )
                        .await
                        .expect("update");
                } else {
                    cluster
                        .create(&t, configmap(&name, i), "bench")
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
        all.extend(task.await.expect("writer task"));
    }
    let elapsed = start.elapsed();
    all.sort();
    (
        (writers * per_writer) as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.99),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = std::env::temp_dir().join(format!("strata-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rss_empty = rss_bytes();
    let cluster = Cluster::open(Store::open(&dir).expect("open store"))
        .await
        .expect("open cluster");
    let t = cluster
        .target("", "v1", "configmaps", "default")
        .expect("configmaps are served");

    println!(
        "disk: {:.0} fsync/s (4 KiB fdatasync in the data dir)",
        disk_fsyncs_per_second(&dir)
    );
    let grouped = |before: (u64, u64)| {
        let (commits, writes) = cluster.commit_stats();
        let (c, w) = (commits - before.0, writes - before.1);
        format!("{:.1} writes/fsync", w as f64 / c.max(1) as f64)
    };
    let before = cluster.commit_stats();
    let (rate, p99) = run_writers(&cluster, &t, 1, 2_000, "single", false).await;
    println!(
        "creates, 1 writer:    {rate:>8.0}/s  p99 {p99:?}  {}",
        grouped(before)
    );
    let before = cluster.commit_stats();
    let (rate, p99) = run_writers(&cluster, &t, 16, 500, "many", false).await;
    println!(
        "creates, 16 writers:  {rate:>8.0}/s  p99 {p99:?}  {}",
        grouped(before)
    );
    // The creates above leave exactly 10,000 objects.
    let count = cluster
        .list(&t, false, &Selector::default(), None, None)
        .expect("list")
        .items
        .len();
    let mut list_times = Vec::new();
    for _ in 0..20 {
        let began = Instant::now();
        let page = cluster
            .list(&t, false, &Selector::default(), None, None)
            .expect("list");
        let body = serde_json::to_vec(&page.items.iter().map(|o| t.present(o)).collect::<Vec<_>>())
            .expect("serialize");
        std::hint::black_box(body);
        list_times.push(began.elapsed());
    }
    list_times.sort();
    println!(
        "list {count} objects (incl. JSON encoding): median {:?}, p99 {:?}",
        percentile(&list_times, 0.5),
        percentile(&list_times, 0.99)
    );
    let rss_full = rss_bytes();
    println!(
        "resident memory: {:.1} MiB for {count} objects ({:.1} MiB per 10,000, store and the 10,000-event watch history included)",
        (rss_full.saturating_sub(rss_empty)) as f64 / 1048576.0,
        (rss_full.saturating_sub(rss_empty)) as f64 / 1048576.0 * 10_000.0 / count.max(1) as f64
    );

    let before = cluster.commit_stats();
    let (rate, p99) = run_writers(&cluster, &t, 1, 2_000, "single", true).await;
    println!(
        "updates, 1 writer:    {rate:>8.0}/s  p99 {p99:?}  {}",
        grouped(before)
    );
    let before = cluster.commit_stats();
    let (rate, p99) = run_writers(&cluster, &t, 16, 500, "many", true).await;
    println!(
        "updates, 16 writers:  {rate:>8.0}/s  p99 {p99:?}  {}",
        grouped(before)
    );

    let watchers = 50;
    let events = 2_000;
    let from = cluster.resource_version();
    let mut receivers = Vec::new();
    for _ in 0..watchers {
        let (_, mut rx) = cluster.hub.subscribe_after(from).expect("subscribe");
        receivers.push(tokio::spawn(async move {
            let mut n = 0;
            while n < events {
                if rx.recv().await.is_ok() {
                    n += 1;
                }
            }
            Instant::now()
        }));
    }
    let began = Instant::now();
    run_writers(&cluster, &t, 16, events / 16, "fan", false).await;
    let mut last = began;
    for r in receivers {
        last = last.max(r.await.expect("watcher"));
    }
    let took = last - began;
    println!(
        "watch fan-out: {events} events to {watchers} watchers in {took:?} ({:.0} deliveries/s)",
        (events * watchers) as f64 / took.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
