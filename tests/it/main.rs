//! Strata's one integration-test binary: end-to-end behaviour through the real `strata` binary,
//! the embedded control plane, the real kubectl and the cloud emulators.

#![allow(clippy::unwrap_used)]

mod apiserver;
mod controllers;
mod crds;
mod examples;
mod functions;
mod fuzz;
mod gcs;
mod golden;
mod image;
mod inprocess;
mod providers;
mod support;
mod validate;
