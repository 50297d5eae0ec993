//! End-to-end tests of the embedded control plane.
