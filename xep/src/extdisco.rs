//! XEP-0215: External Service Discovery (1.0.0)
//!
//! The `services` and `credentials` queries a client sends to learn the STUN and TURN
//! servers it may use for calls, and the `<service/>` elements the server answers with.

use thiserror::Error;

use crate::element::Element;
use crate::ns;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtDiscoError {
    /// The element is not `<services/>` or `<credentials/>` in `urn:xmpp:extdisco:2`.
    #[error("not an external service discovery request")]
    NotExtDisco,
    /// `<credentials/>` without a `<service/>` naming a host and a type.
    #[error("credentials request without service host and type")]
    MissingService,
    /// A `port` that is not a port number.
    #[error("malformed port")]
    BadPort,
}

/// A client's request, the payload of an IQ get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtDiscoRequest {
    /// Every service, or those of one type (`stun`, `turn` ...).
    Services {
        /// The type asked for, if any.
        kind: Option<String>,
    },
    /// Credentials for the services of a host and type (and port, when several).
    Credentials {
        /// The service host.
        host: String,
        /// The service type.
        kind: String,
        /// The port, to pick one of several services on the same host.
        port: Option<u16>,
    },
}

impl ExtDiscoRequest {
    /// Reads the payload of an IQ get.
    pub fn parse(payload: &Element) -> Result<ExtDiscoRequest, ExtDiscoError> {
        if payload.ns() != ns::EXTDISCO {
            return Err(ExtDiscoError::NotExtDisco);
        }
        match payload.name() {
            "services" => Ok(ExtDiscoRequest::Services {
                kind: payload.get_attr("type").map(str::to_owned),
            }),
            "credentials" => {
                let service = payload
                    .get_child("service", ns::EXTDISCO)
                    .ok_or(ExtDiscoError::MissingService)?;
                let (Some(host), Some(kind)) = (service.get_attr("host"), service.get_attr("type"))
                else {
                    return Err(ExtDiscoError::MissingService);
                };
                let port = match service.get_attr("port") {
                    Some(port) => Some(port.parse().map_err(|_| ExtDiscoError::BadPort)?),
                    None => None,
                };
                Ok(ExtDiscoRequest::Credentials {
                    host: host.to_owned(),
                    kind: kind.to_owned(),
                    port,
                })
            }
            _ => Err(ExtDiscoError::NotExtDisco),
        }
    }
}

/// One external service as the server describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalService {
    /// The registered service type: `stun`, `turn`, `turns` ...
    pub kind: String,
    /// A host name or an IP address.
    pub host: String,
    /// The port.
    pub port: Option<u16>,
    /// `udp` or `tcp`.
    pub transport: Option<String>,
    /// A name for humans.
    pub name: Option<String>,
    /// Credentials are needed (and are given here, or must be requested).
    pub restricted: bool,
    /// The user name at the service.
    pub username: Option<String>,
    /// The password at the service.
    pub password: Option<String>,
    /// When the credentials expire, as an XEP-0082 DateTime.
    pub expires: Option<String>,
}

impl ExternalService {
    /// The `<service/>` element.
    pub fn to_element(&self) -> Element {
        Element::new("service", ns::EXTDISCO)
            .attr("type", self.kind.clone())
            .attr("host", self.host.clone())
            .attr_opt("port", self.port.map(|port| port.to_string()))
            .attr_opt("transport", self.transport.clone())
            .attr_opt("name", self.name.clone())
            .attr_opt("restricted", self.restricted.then_some("true"))
            .attr_opt("username", self.username.clone())
            .attr_opt("password", self.password.clone())
            .attr_opt("expires", self.expires.clone())
    }

    /// Reads a `<service/>` element; `None` without host or type.
    pub fn from_element(service: &Element) -> Option<ExternalService> {
        if !service.is("service", ns::EXTDISCO) {
            return None;
        }
        let text = |name: &str| service.get_attr(name).map(str::to_owned);
        Some(ExternalService {
            kind: text("type")?,
            host: text("host")?,
            port: service.get_attr("port").and_then(|port| port.parse().ok()),
            transport: text("transport"),
            name: text("name"),
            restricted: matches!(service.get_attr("restricted"), Some("true" | "1")),
            username: text("username"),
            password: text("password"),
            expires: text("expires"),
        })
    }
}

/// The `<services/>` answer, echoing the type asked for.
pub fn services_element(kind: Option<&str>, services: &[ExternalService]) -> Element {
    services.iter().fold(
        Element::new("services", ns::EXTDISCO).attr_opt("type", kind),
        |element, service| element.child(service.to_element()),
    )
}

/// The `<credentials/>` answer.
pub fn credentials_element(services: &[ExternalService]) -> Element {
    services.iter().fold(
        Element::new("credentials", ns::EXTDISCO),
        |element, service| element.child(service.to_element()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<ExtDiscoRequest, ExtDiscoError> {
        ExtDiscoRequest::parse(&Element::parse(xml).expect("xml"))
    }

    #[test]
    fn the_services_examples_read_with_and_without_type() {
        assert_eq!(
            parse("<services xmlns='urn:xmpp:extdisco:2'/>"),
            Ok(ExtDiscoRequest::Services { kind: None })
        );
        assert_eq!(
            parse("<services xmlns='urn:xmpp:extdisco:2' type='turn'/>"),
            Ok(ExtDiscoRequest::Services {
                kind: Some("turn".to_owned())
            })
        );
    }

    #[test]
    fn the_credentials_example_reads_host_type_and_optional_port() {
        assert_eq!(
            parse("<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.shakespeare.lit' type='turn' /></credentials>"),
            Ok(ExtDiscoRequest::Credentials {
                host: "turn.shakespeare.lit".to_owned(),
                kind: "turn".to_owned(),
                port: None,
            })
        );
        assert_eq!(
            parse("<credentials xmlns='urn:xmpp:extdisco:2'><service host='h' type='turn' port='x'/></credentials>"),
            Err(ExtDiscoError::BadPort)
        );
        assert_eq!(
            parse("<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn'/></credentials>"),
            Err(ExtDiscoError::MissingService)
        );
        assert_eq!(
            parse("<services xmlns='urn:xmpp:extdisco:1'/>"),
            Err(ExtDiscoError::NotExtDisco)
        );
    }

    #[test]
    fn a_service_writes_and_reads_back() {
        let service = ExternalService {
            kind: "turn".to_owned(),
            host: "192.0.2.1".to_owned(),
            port: Some(8889),
            transport: Some("udp".to_owned()),
            name: None,
            restricted: true,
            username: Some("auu98sjl2wk3e9fjdsl7".to_owned()),
            password: Some("93jn3bakj9s832lrjbbz".to_owned()),
            expires: Some("2022-08-23T00:00:00Z".to_owned()),
        };
        let answer = services_element(Some("turn"), std::slice::from_ref(&service));
        assert_eq!(answer.get_attr("type"), Some("turn"));
        let read: Vec<ExternalService> = answer
            .children()
            .filter_map(ExternalService::from_element)
            .collect();
        assert_eq!(read, vec![service]);
    }
}
