//! Per-step cost of an external function against the same step run natively.
//!
//! `cargo bench -p strata-functions --bench step` runs, in one process and one run:
//! - native: a patch-and-transform step composing 10 ConfigMaps with 5 patches each, in-process;
//! - remote: a function written with function-sdk-rust, served over gRPC on a loopback port by
//!   its own thread and runtime, that returns the same 10 ConfigMaps (its own work is a clone of
//!   a prepared answer, so the figure is the protocol's cost: serialize, call, decode, merge);
//! - cached: the remote step again with unchanged inputs through the TTL cache.
//!
//! It prints the median and mean per step of each and the remote overhead over native. The
//! goal is an overhead of at most 1 ms per step on loopback (Crossplane's in-cluster steps cost
//! 5–26 ms each).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use function_sdk_rust::proto::v1::function_runner_service_server::{
    FunctionRunnerService, FunctionRunnerServiceServer,
};
use function_sdk_rust::resource::json_to_struct;
use function_sdk_rust::response;
use serde_json::{Value, json};
use strata_core::load::SourcedValue;
use strata_core::pipeline::{Observed, Pipeline};
use strata_core::render::ObservedResources;
use strata_functions::cache::Cached;
use strata_functions::proto::{RunFunctionRequest, RunFunctionResponse};
use strata_functions::run::{PipelineInputs, StaticResources, run_pipeline};
use strata_functions::transport::{
    FunctionEndpoint, FunctionRunner, GrpcFunctions, ProtocolVersion,
};

const RESOURCES: usize = 10;
const ITERATIONS: usize = 2_000;

fn config_map(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"namespace": "default", "name": format!("app-res-{i}")},
        "data": {"static": "value", "index": i.to_string(), "region": "eu-west-1",
                 "size": "db.t3.small", "name": "app-app", "storage": "20480"},
    })
}

struct Compose;

#[tonic::async_trait]
impl FunctionRunnerService for Compose {
    async fn run_function(
        &self,
        request: tonic::Request<RunFunctionRequest>,
    ) -> Result<tonic::Response<RunFunctionResponse>, tonic::Status> {
        let req = request.into_inner();
        let mut rsp = response::to(&req, Duration::from_secs(60));
        for i in 0..RESOURCES {
            let r = response::desired_composed(&mut rsp, format!("res-{i}"));
            r.resource = config_map(i).as_object().map(json_to_struct);
        }
        Ok(tonic::Response::new(rsp))
    }
}

fn pipeline(step: Value) -> Pipeline {
    let doc = SourcedValue {
        source: "bench".into(),
        document: 1,
        value: json!({
            "apiVersion": "apiextensions.crossplane.io/v1", "kind": "Composition",
            "metadata": {"name": "bench"},
            "spec": {"compositeTypeRef": {"apiVersion": "example.org/v1", "kind": "XApp"},
                     "mode": "Pipeline", "pipeline": [step]},
        }),
    };
    match Pipeline::load(&doc, &BTreeMap::new()) {
        Ok(Some(mut p)) => {
            if let Err(e) = p.compile_native_steps() {
                panic!("bench pipeline: {e}");
            }
            p
        }
        other => panic!("bench pipeline: {other:?}"),
    }
}

fn native_step() -> Value {
    let resources: Vec<Value> = (0..RESOURCES)
        .map(|i| {
            json!({
                "name": format!("res-{i}"),
                "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"},
                         "data": {"static": "value", "index": i.to_string()}},
                "patches": [
                    {"fromFieldPath": "spec.region", "toFieldPath": "data.region"},
                    {"fromFieldPath": "spec.size", "toFieldPath": "data.size",
                     "transforms": [{"type": "map", "map": {"small": "db.t3.small"}}]},
                    {"fromFieldPath": "metadata.name", "toFieldPath": "data.name",
                     "transforms": [{"type": "string", "string": {"type": "Format", "fmt": "app-%s"}}]},
                    {"fromFieldPath": "spec.storageGB", "toFieldPath": "data.storage",
                     "transforms": [{"type": "math", "math": {"type": "Multiply", "multiply": 1024}},
                                    {"type": "convert", "convert": {"toType": "string"}}]},
                    {"fromFieldPath": "spec.labels", "toFieldPath": "metadata.labels"}
                ],
                "readinessChecks": [{"type": "None"}]
            })
        })
        .collect();
    json!({"step": "pt", "functionRef": {"name": "function-patch-and-transform"},
           "input": {"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources", "resources": resources}})
}

/// Per-iteration durations of `ITERATIONS` pipeline runs.
async fn measure<R: FunctionRunner>(p: &Pipeline, runner: &R, xr: &Value) -> Vec<Duration> {
    let observed = ObservedResources::new();
    let secrets = BTreeMap::new();
    let required = StaticResources::default();
    let mut out = Vec::with_capacity(ITERATIONS);
    for i in 0..ITERATIONS + 200 {
        let start = Instant::now();
        let run = run_pipeline(
            p,
            runner,
            PipelineInputs {
                observed: Observed {
                    composite: xr,
                    resources: &observed,
                },
                environment: None,
                context: serde_json::Map::new(),
                secrets: &secrets,
                required: &required,
            },
        )
        .await;
        let took = start.elapsed();
        match run {
            Ok(r) => assert_eq!(r.finished.resources.len(), RESOURCES),
            Err(e) => panic!("bench step failed: {e}"),
        }
        if i >= 200 {
            out.push(took);
        }
    }
    out
}

fn summary(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort();
    let median = d[d.len() / 2].as_secs_f64() * 1e6;
    let mean = d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len() as f64 * 1e6;
    (median, mean)
}

fn main() {
    // The function runs on its own thread and runtime, as another process would.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { return };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
                return;
            };
            let Ok(addr) = listener.local_addr() else {
                return;
            };
            let _ = tx.send(addr.to_string());
            let _ = tonic::transport::Server::builder()
                .add_service(FunctionRunnerServiceServer::new(Compose))
                .serve_with_incoming(
                    // As function servers do: without it, Nagle and delayed ACKs add ~40 ms.
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                )
                .await;
        });
    });
    let address = rx.recv().expect("the bench function listens");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let _entered = rt.enter();
    let endpoints = BTreeMap::from([(
        "compose".to_owned(),
        FunctionEndpoint {
            address,
            tls: None,
            protocol: ProtocolVersion::V1,
        },
    )]);
    let grpc = GrpcFunctions::new(endpoints, Duration::from_secs(10)).expect("a channel");
    let xr = json!({
        "apiVersion": "example.org/v1", "kind": "XApp",
        "metadata": {"name": "app", "uid": "u-1"},
        "spec": {"region": "eu-west-1", "size": "small", "storageGB": 20, "labels": {"team": "a"}},
    });
    let native = pipeline(native_step());
    let remote = pipeline(json!({"step": "fn", "functionRef": {"name": "compose"}}));
    let cached = Cached::new(grpc.clone(), 16);
    let (n_med, n_mean) = summary(rt.block_on(measure(&native, &grpc, &xr)));
    let (r_med, r_mean) = summary(rt.block_on(measure(&remote, &grpc, &xr)));
    let (c_med, c_mean) = summary(rt.block_on(measure(&remote, &cached, &xr)));
    println!(
        "per step, XR with {RESOURCES} composed resources, {ITERATIONS} runs each (median / mean):"
    );
    println!("  native patch-and-transform   {n_med:8.1} µs / {n_mean:8.1} µs");
    println!("  remote function over gRPC    {r_med:8.1} µs / {r_mean:8.1} µs");
    println!("  remote, response cached      {c_med:8.1} µs / {c_mean:8.1} µs");
    println!(
        "  remote overhead over native  {:8.1} µs (goal ≤ 1000 µs); remote / native = {:.2}×",
        r_med - n_med,
        r_med / n_med
    );
}
