//! Strata's pure composition core.
//!
//! Everything here is a plain function of its inputs: no network, no clock, no Kubernetes client.
//! The controllers, the embedded control plane and the CLI call into it; nothing here calls out.
//!
//! Data enters as YAML/JSON documents ([`load`]), is compiled once per Composition
//! ([`compile`], [`graph`]) and rendered per composite resource ([`render`]).

// Every public item is documented, and a `pub` item must be reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

pub mod compile;
pub mod connection;
pub mod crd;
pub mod definition;
pub mod environment;
pub mod fieldpath;
pub mod graph;
pub mod lint;
pub mod load;
pub mod model;
pub mod patch;
pub mod pipeline;
pub mod position;
pub mod readiness;
pub mod render;
mod rules;
pub mod suggest;
pub mod transform;
pub mod wire;
