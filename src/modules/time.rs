//! XEP-0202: Entity Time — the server's clock in UTC.

use std::sync::Arc;

use async_trait::async_trait;
use rempart_xep::delay::datetime;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use time::OffsetDateTime;

use crate::modules::Module;
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

/// The entity time module.
pub struct TimeModule;

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0202",
    version: "2.0",
    note: "server time in UTC",
}];

impl Module for TimeModule {
    fn name(&self) -> &'static str {
        "time"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Server, ns::TIME, "time", self);
        registrar.server_feature(ns::TIME);
    }
}

#[async_trait]
impl IqHandler<Router> for TimeModule {
    async fn handle(&self, _router: &Router, request: IqRequest) -> IqResult {
        if request.iq_type != IqType::Get {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        Ok(Some(
            Element::new("time", ns::TIME)
                .child(Element::new("tzo", ns::TIME).text("+00:00"))
                .child(Element::new("utc", ns::TIME).text(datetime(OffsetDateTime::now_utc()))),
        ))
    }
}
