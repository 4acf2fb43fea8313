//! Features a client may set up inline with a Bind 2 binding (XEP-0386), beyond the ones the
//! session core handles itself (stream management, client state): e.g. carbons.

use rempart_xep::element::Element;

use crate::router::sessions::SessionHandle;

/// Sets up one inline feature for a session bound with Bind 2.
pub trait BindInline: Send + Sync {
    /// Applies the client's request element to the new session; returns what to report in
    /// `<bound/>`, if anything.
    fn bind_inline(&self, session: &SessionHandle, request: &Element) -> Option<Element>;
}
