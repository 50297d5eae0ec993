//! The embedded, Kubernetes-compatible control plane behind `strata up`.
//!
//! Data enters over HTTP (the private `http` module), is decided on by [`cluster`] under one lock,
//! made durable by [`store`]'s group-commit writer, and fans out to watchers through the `watch`
//! module. The garbage collector (`gc`) is a client of [`cluster`] like any controller.
//!
//! The public surface is what the CLI, the controllers' benches and the integration tests embed:
//! [`Server`] and its configuration, the [`cluster`] and [`store`] it serves, authentication
//! ([`auth`], [`client_cert`], [`tls`]) and authorization ([`rbac`]). Everything else is internal.

// A `pub` item must be reachable from outside the crate and documented.
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod admission;
pub mod auth;
mod authn_api;
mod builtin;
mod cel;
pub mod client_cert;
pub mod cluster;
#[cfg(test)]
mod cluster_tests;
mod compact;
pub mod connections;
mod discovery;
mod encryption;
pub mod error;
mod fields;
mod gc;
mod http;
pub mod kubernetes_service;
mod object;
mod openapi;
pub mod patch;
mod printers;
mod protobuf;
pub mod rbac;
mod resource;
pub mod selector;
pub mod server;
mod service_account;
pub mod store;
mod table;
pub mod tls;
mod token_file;
mod validation;
mod watch;
pub mod writes;

pub use server::{Server, ServerConfig, ServerError};
