//! Certificates, as ringmesh's proxy and control plane both see them.
//!
//! The control plane checks certificate material before it pushes it, and
//! the proxy checks it again before it serves it (a file on the proxy's
//! machine, or a config from an older control plane): both must accept and
//! refuse exactly the same things, with the same words, so the checks live
//! here once. `mint` (behind the feature of that name) makes throwaway
//! CAs and leaves for tests and benchmark runs; nothing it makes is ever
//! committed.
//!
//! Messages never quote PEM: a key's bytes appear in no error.

pub mod check;
#[cfg(feature = "mint")]
pub mod mint;
pub mod pem;
