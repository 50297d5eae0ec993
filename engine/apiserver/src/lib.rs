//! The embedded, Kubernetes-compatible control plane behind `strata up`.
//!
//! Data enters over HTTP ([`http`]), is decided on by [`cluster`] under one lock, made durable by
//! [`store`]'s group-commit writer, and fans out to watchers through [`watch`]. The garbage
//! collector ([`gc`]) is a client of [`cluster`] like any controller.

// A `pub` item must be reachable from outside the crate; `missing_docs` is not enforced here yet.
#![warn(unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admission;
pub mod auth;
pub mod authn_api;
pub mod builtin;
pub mod cel;
pub mod client_cert;
pub mod cluster;
#[cfg(test)]
mod cluster_tests;
pub mod connections;
pub mod discovery;
pub mod encryption;
pub mod error;
pub mod fields;
pub mod gc;
pub mod http;
pub mod kubernetes_service;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod printers;
pub mod protobuf;
pub mod rbac;
pub mod resource;
pub mod selector;
pub mod server;
pub mod service_account;
pub mod store;
pub mod table;
pub mod tls;
pub mod token_file;
pub mod validation;
pub mod watch;
pub mod writes;

pub use server::{Server, ServerConfig, ServerError};
