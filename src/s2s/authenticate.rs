//! Authentication of an outbound stream, both ways: the peer's certificate is judged against
//! its domain's policy, then we prove our own domain with SASL EXTERNAL (XEP-0178) when the
//! peer offers it, or else with Server Dialback (XEP-0220).

use base64::Engine as _;
use rempart_xep::element::Element;
use rempart_xep::ns;

use crate::s2s::connect::{self, ConnectError, OpenStream};
use crate::s2s::resolve::Observer;
use crate::s2s::S2s;

/// Checks the peer's certificate for `remote`: a problem is fatal unless policy lets dialback
/// stand in for it.
pub fn judge_certificate(
    s2s: &S2s,
    stream: &OpenStream,
    remote: &str,
    observe: Observer<'_>,
) -> Result<(), ConnectError> {
    let policy = s2s.policy(remote);
    match s2s.anchors.verify(&stream.peer_chain, remote) {
        Ok(()) => {
            observe("certificate", format!("valid for {remote}"));
            Ok(())
        }
        Err(problem) if policy.allows_dialback() => {
            observe(
                "certificate",
                format!("{problem}; the policy for {remote} allows Server Dialback"),
            );
            Ok(())
        }
        Err(problem) => {
            observe(
                "certificate",
                format!("{problem}; the policy for {remote} requires a valid certificate"),
            );
            Err(ConnectError::Certificate(problem))
        }
    }
}

/// What became of SASL EXTERNAL.
pub enum External {
    /// We are authenticated; the stream was restarted.
    Succeeded(OpenStream),
    /// The peer did not offer it, or refused our certificate.
    NotDone(OpenStream),
}

/// Authenticates as `local` with our certificate when the peer offers SASL EXTERNAL.
pub async fn sasl_external(
    mut stream: OpenStream,
    local: &str,
    remote: &str,
    observe: Observer<'_>,
) -> Result<External, ConnectError> {
    let offered = stream
        .features
        .get_child("mechanisms", ns::SASL)
        .is_some_and(|m| {
            m.children()
                .any(|c| c.is("mechanism", ns::SASL) && c.text_content() == "EXTERNAL")
        });
    if !offered {
        observe(
            "authenticate",
            format!("{remote} does not offer SASL EXTERNAL for our certificate"),
        );
        return Ok(External::NotDone(stream));
    }
    // XEP-0178 §3: the authorization identity is included for older peers.
    let authzid = base64::engine::general_purpose::STANDARD.encode(local);
    let auth = Element::new("auth", ns::SASL)
        .attr("mechanism", "EXTERNAL")
        .text(authzid);
    stream
        .writer
        .write_element(&auth)
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    let answer = connect::next_element(&mut stream.reader).await?;
    if answer.is("success", ns::SASL) {
        observe("authenticate", "SASL EXTERNAL succeeded".to_owned());
        let stream = connect::restart(stream, local, remote).await?;
        return Ok(External::Succeeded(stream));
    }
    let condition = answer
        .children()
        .next()
        .map_or_else(|| "no condition".to_owned(), |c| c.name().to_owned());
    observe(
        "authenticate",
        format!("SASL EXTERNAL refused ({condition})"),
    );
    Ok(External::NotDone(stream))
}

/// Proves `local` with a dialback key; the peer verifies it with our server (XEP-0220 §2.1).
pub async fn dialback(
    s2s: &S2s,
    stream: &mut OpenStream,
    local: &str,
    remote: &str,
) -> Result<(), ConnectError> {
    let request = dialback_request(s2s, local, remote, &stream.peer_stream_id);
    stream
        .writer
        .write_element(&request)
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    loop {
        let answer = connect::next_element(&mut stream.reader).await?;
        if let Some(outcome) = dialback_outcome(&answer, local, remote) {
            return outcome;
        }
    }
}

/// The `<db:result/>` carrying our key for `local` on the peer's stream `stream_id`.
pub fn dialback_request(s2s: &S2s, local: &str, remote: &str, stream_id: &str) -> Element {
    Element::new("result", ns::DIALBACK)
        .attr("from", local)
        .attr("to", remote)
        .text(s2s.secret().key(remote, local, stream_id))
}

/// What `answer` says of our request for `local`, if it is the answer to it.
pub fn dialback_outcome(
    answer: &Element,
    local: &str,
    remote: &str,
) -> Option<Result<(), ConnectError>> {
    let answers_us = answer.is("result", ns::DIALBACK)
        && answer.get_attr("from") == Some(remote)
        && answer.get_attr("to") == Some(local);
    if !answers_us {
        return None;
    }
    Some(match answer.get_attr("type") {
        Some("valid") => Ok(()),
        _ => Err(ConnectError::Protocol(format!(
            "dialback refused: {}",
            answer.to_xml()
        ))),
    })
}
