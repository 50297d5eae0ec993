//! Strata's function pipeline runner.
//!
//! A Crossplane `mode: Pipeline` Composition is a list of steps. Native steps
//! (patch-and-transform, auto-ready, sequencer, environment-configs) run in-process through
//! [`strata_core::pipeline`]; every other step is a call to a Crossplane composition function
//! over its gRPC protocol (`apiextensions.fn.proto.v1.FunctionRunnerService/RunFunction`, or the
//! identical `v1beta1` service), with the types and client of the official `function-sdk-rust`
//! crate. [`run::run_pipeline`] owns the engine's protocol duties — the request tag, the
//! advertised capabilities, observed and accumulated desired state, the context threaded from
//! step to step (with the environment under Crossplane's key), credentials, the requirements loop
//! (at most 5 runs of a step while its requirements change), results (a Fatal one stops the
//! pipeline), conditions and the response TTL — and ends with the core's
//! [`strata_core::pipeline::finish`], which gates, orders and stamps the desired state.
//!
//! Where a function runs is behind [`transport::FunctionRunner`]: [`transport::GrpcFunctions`]
//! dials an address (insecure, or mTLS with the control plane's certificates). The runner is
//! shared by `strata render` and the controllers: there is one implementation of the pipeline.
//! [`cache::Cached`] re-uses a response within its TTL when a step's request did not change.

// Every public item is documented, and a `pub` item must be reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

pub mod cache;
pub mod certs;
pub mod oci;
pub mod process;
pub mod run;
pub mod transport;

pub use function_sdk_rust::proto::v1 as proto;
