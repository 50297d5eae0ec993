//! Render throughput against the floor of just parsing the input and serializing the output.
//!
//! `cargo bench -p strata-core --bench render` runs criterion, then prints a summary:
//! XRs/s and patches/s per core for a Composition of 10 composed resources and 50 patches over
//! 1,000 distinct XRs, the parse+serialize floor measured in the same run, their ratio, and the
//! graph build + topological sort of 10,000 nodes.

use std::hint::black_box;

// The same allocator the `strata` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use serde_json::{Value, json};
use strata_core::compile::CompiledComposition;
use strata_core::graph::{DependencyGraph, EdgeKind, EdgeSpec};
use strata_core::model::CompositionSpec;
use strata_core::render::{ObservedResources, RenderInput, render};

const XRS: usize = 1_000;
const RESOURCES: usize = 10;
const PATCHES_PER_RESOURCE: usize = 5;

/// 10 resources × 5 patches: plain copies, a map, a string format, a math multiply and a convert.
fn composition() -> CompositionSpec {
    let resources: Vec<Value> = (0..RESOURCES)
        .map(|i| {
            json!({
                "name": format!("res-{i}"),
                "base": {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"namespace": "default"},
                    "data": {"static": "value", "index": i.to_string()}
                },
                "patches": [
                    {"fromFieldPath": "spec.region", "toFieldPath": "data.region"},
                    {"fromFieldPath": "spec.size", "toFieldPath": "data.size",
                     "transforms": [{"type": "map", "map": {"small": "db.t3.small", "large": "db.r5.large"}}]},
                    {"fromFieldPath": "metadata.name", "toFieldPath": "data.name",
                     "transforms": [{"type": "string", "string": {"type": "Format", "fmt": "app-%s"}}]},
                    {"fromFieldPath": "spec.storageGB", "toFieldPath": "data.storage",
                     "transforms": [{"type": "math", "math": {"type": "Multiply", "multiply": 1024}},
                                    {"type": "convert", "convert": {"toType": "string"}}]},
                    {"fromFieldPath": "spec.labels", "toFieldPath": "metadata.labels"}
                ]
            })
        })
        .collect();
    serde_json::from_value(json!({
        "compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
        "resources": resources
    }))
    .expect("the benchmark composition is valid")
}

/// 1,000 distinct XRs of about 1 KB each, as JSON text (what arrives from the API server).
fn composites() -> Vec<String> {
    (0..XRS)
        .map(|i| {
            let region = ["us-east-1", "eu-west-1", "ap-south-1"][i % 3];
            let size = if i % 2 == 0 { "small" } else { "large" };
            json!({
                "apiVersion": "example.org/v1",
                "kind": "XApp",
                "metadata": {
                    "name": format!("app-{i}"),
                    "uid": format!("00000000-0000-0000-0000-{i:012}"),
                    "labels": {"team": format!("team-{}", i % 7), "tier": "gold"},
                    "annotations": {"description": "x".repeat(400)}
                },
                "spec": {
                    "region": region,
                    "size": size,
                    "storageGB": 20 + i as i64,
                    "labels": {"app": format!("app-{i}"), "env": "prod"},
                    "notes": "y".repeat(300)
                }
            })
            .to_string()
        })
        .collect()
}

/// Parse the XR, render, serialize every output document: the whole per-XR cost.
fn render_one(compiled: &CompiledComposition, text: &str, observed: &ObservedResources) -> usize {
    let xr: Value = serde_json::from_str(text).expect("valid JSON");
    let out = render(
        compiled,
        RenderInput {
            composite: &xr,
            observed,
            environment: None,
        },
    )
    .expect("renders");
    // The XR with its new status, serialized through the borrowing view `strata render` prints.
    let mut bytes = serde_json::to_vec(&out.composite(&xr))
        .expect("serializes")
        .len();
    for r in &out.resources {
        bytes += serde_json::to_vec(&r.resource).expect("serializes").len();
    }
    bytes
}

/// The floor: parse the same XR and serialize output documents of the same size, without rendering.
fn floor_one(text: &str, outputs: &[Value]) -> usize {
    let xr: Value = serde_json::from_str(text).expect("valid JSON");
    let mut bytes = serde_json::to_vec(&xr).expect("serializes").len();
    for r in outputs {
        bytes += serde_json::to_vec(r).expect("serializes").len();
    }
    bytes
}

fn graph_input(n: usize) -> (Vec<String>, Vec<EdgeSpec>) {
    let names = (0..n).map(|i| format!("r{i}")).collect();
    let edges = (1..n)
        .map(|i| EdgeSpec {
            from: (i * 7919) % i,
            to: i,
            kind: EdgeKind::DependsOn,
            detail: String::new(),
        })
        .collect();
    (names, edges)
}

fn time_per_iter(mut f: impl FnMut(), min: Duration) -> Duration {
    f();
    let start = Instant::now();
    let mut iters = 0u32;
    while start.elapsed() < min {
        f();
        iters += 1;
    }
    start.elapsed() / iters.max(1)
}

/// One pass of the pipeline over every XR (a separate symbol for callgrind's `--toggle-collect`).
#[inline(never)]
fn profile_pipeline(compiled: &CompiledComposition, xrs: &[String], observed: &ObservedResources) {
    black_box(
        xrs.iter()
            .map(|x| render_one(compiled, x, observed))
            .sum::<usize>(),
    );
}

/// One pass of the floor over every XR (a separate symbol for callgrind's `--toggle-collect`).
#[inline(never)]
fn profile_floor(xrs: &[String], outputs: &[Value]) {
    black_box(xrs.iter().map(|x| floor_one(x, outputs)).sum::<usize>());
}

fn main() {
    let compiled = CompiledComposition::compile(&composition()).expect("compiles");
    let xrs = composites();
    let observed = ObservedResources::new();
    // One render's output documents, reused by the floor so both serialize the same volume.
    let sample: Value = serde_json::from_str(&xrs[0]).expect("valid");
    let sample_out = render(
        &compiled,
        RenderInput {
            composite: &sample,
            observed: &observed,
            environment: None,
        },
    )
    .expect("renders");
    let mut outputs = vec![sample_out.composite(&sample).to_value()];
    outputs.extend(sample_out.resources.iter().map(|r| r.resource.clone()));

    // `STRATA_RENDER_PROFILE=pipeline` (or `floor`): one pass over the 1,000 XRs, no criterion.
    // For instruction counts that do not depend on the machine's load:
    // `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_pipeline*' <bench>`.
    if let Ok(which) = std::env::var("STRATA_RENDER_PROFILE") {
        match which.as_str() {
            "pipeline" => profile_pipeline(&compiled, &xrs, &observed),
            "floor" => profile_floor(&xrs, &outputs),
            other => panic!("STRATA_RENDER_PROFILE: expected pipeline or floor, got {other:?}"),
        }
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(XRS as u64));
    group.bench_function("1000_xrs_10_resources_50_patches", |b| {
        b.iter(|| {
            xrs.iter()
                .map(|x| render_one(&compiled, x, &observed))
                .sum::<usize>()
        })
    });
    group.bench_function("parse_serialize_floor_1000_xrs", |b| {
        b.iter(|| xrs.iter().map(|x| floor_one(x, &outputs)).sum::<usize>())
    });
    group.finish();
    let (names, edges) = graph_input(10_000);
    c.bench_function("graph_build_sort_10000_nodes", |b| {
        b.iter(|| DependencyGraph::build(black_box(&names), black_box(&edges)).expect("acyclic"))
    });
    c.final_summary();

    // A plain summary with the ratio, measured in this same run.
    let min = Duration::from_secs(2);
    let render_t = time_per_iter(
        || {
            black_box(
                xrs.iter()
                    .map(|x| render_one(&compiled, x, &observed))
                    .sum::<usize>(),
            );
        },
        min,
    );
    let floor_t = time_per_iter(
        || {
            black_box(xrs.iter().map(|x| floor_one(x, &outputs)).sum::<usize>());
        },
        min,
    );
    let graph_t = time_per_iter(
        || {
            black_box(DependencyGraph::build(&names, &edges).expect("acyclic"));
        },
        min,
    );
    let xrs_per_s = XRS as f64 / render_t.as_secs_f64();
    let patches = (RESOURCES * PATCHES_PER_RESOURCE) as f64;
    println!();
    println!("summary (one core):");
    println!(
        "  render (parse + render + serialize): {:>10.0} XRs/s  {:>12.0} patches/s  {:>7.2} µs/XR",
        xrs_per_s,
        xrs_per_s * patches,
        render_t.as_secs_f64() * 1e6 / XRS as f64
    );
    println!(
        "  floor  (parse + serialize only):     {:>10.0} XRs/s  {:>28.2} µs/XR",
        XRS as f64 / floor_t.as_secs_f64(),
        floor_t.as_secs_f64() * 1e6 / XRS as f64
    );
    println!(
        "  ratio (parse + render + serialize) / floor: {:>6.2}x",
        render_t.as_secs_f64() / floor_t.as_secs_f64()
    );
    println!(
        "  ratio render alone / floor:                {:>6.2}x",
        (render_t.as_secs_f64() - floor_t.as_secs_f64()).max(0.0) / floor_t.as_secs_f64()
    );
    println!(
        "  graph build + topological sort, 10,000 nodes: {:.3} ms",
        graph_t.as_secs_f64() * 1e3
    );
}
