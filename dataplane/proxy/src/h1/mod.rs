//! HTTP/1.x on the proxy's side of the wire: the client connection
//! (`server`), the upstream exchange (`client`), body relays (`relay`) and
//! the protocol-neutral views over parsed heads (`view`).
//!
//! Framing itself (parsing heads, smuggling rules, the chunked walker,
//! head rewriting) is in the `ringmesh-http1` crate, which knows bytes and
//! no IO; this module moves those bytes over `transport::Stream`s.

pub mod client;
pub mod relay;
pub mod server;
mod to_h2;
pub mod view;

#[cfg(test)]
mod tests;
