//! Network plumbing: listeners, transports and TLS.

pub mod listener;
pub mod tls;
pub mod transport;
