//! The embedded, Kubernetes-compatible control plane behind `strata up`.
//!
//! Data enters over HTTP ([`http`]), is decided on by [`cluster`] under one lock, made durable by
//! [`store`]'s group-commit writer, and fans out to watchers through [`watch`]. The garbage
//! collector ([`gc`]) is a client of [`cluster`] like any controller.

pub mod admission;
pub mod cluster;
pub mod error;
pub mod fields;
pub mod object;
pub mod patch;
pub mod resource;
pub mod selector;
pub mod store;
pub mod validation;
pub mod watch;
pub mod discovery;
pub mod gc;
pub mod table;
pub mod auth;
pub mod http;
pub mod server;
pub mod tls;

pub use server::{Server, ServerConfig, ServerError};
