//! EnvironmentConfig selection and merging: the pure part lives in the core
//! ([`strata_core::environment`]), so `strata render` selects exactly as the XR controller does.

pub(crate) use strata_core::environment::{Config, resolve};
