//! The embedded, Kubernetes-compatible control plane behind `strata up`.
