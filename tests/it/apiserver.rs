//! The embedded control plane (`strata up`): kube-rs and the real kubectl against it.
#![allow(clippy::unwrap_used)]

mod authn;
mod autoscaling;
mod bad_requests;
mod builtins;
mod connections;
mod crash;
mod data_dir;
mod default_roles;
mod discovery;
mod field_selectors;
mod fixture;
mod kube_client;
mod kubectl;
mod managed_fields;
mod memory;
mod openapi;
mod openapi_v2_crds;
mod pagination;
mod payloads;
mod python_clients;
mod rbac;
mod ssa_lists;
mod strategic_patch;
mod up_logs;
mod validation_rules;
mod watch_stall;
