//! The Bucket provider against the Cloud Storage emulators, through a recording proxy:
//! updates that leave unmanaged settings alone, and every credential source exchanging real
//! credentials at local token endpoints.
//!
//! Install the emulators with `pip install -r tests/requirements.txt`; `openssl` makes the
//! throwaway service-account keys.

mod credentials;
mod support;
mod updates;
