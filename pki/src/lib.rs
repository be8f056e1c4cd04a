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
//! Workload identity: `spiffe` names workloads and reads a peer
//! certificate's name (always built: the proxy checks peers with it);
//! `csr` (feature) makes the proxy's key and certificate request; `ca`
//! (feature, the control plane) issues SPIFFE X.509-SVIDs from them.
//!
//! Messages never quote PEM: a key's bytes appear in no error.

#[cfg(feature = "ca")]
pub mod ca;
pub mod check;
#[cfg(feature = "csr")]
pub mod csr;
#[cfg(feature = "mint")]
pub mod mint;
pub mod pem;
pub mod spiffe;
