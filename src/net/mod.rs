//! Network plumbing: listeners, transports and TLS.

pub mod listener;
pub mod per_address;
pub mod public_address;
pub mod tls;
pub mod transport;
