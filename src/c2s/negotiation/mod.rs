//! Client stream negotiation (RFC 6120 §4–7): stream header, STARTTLS, SASL, resource
//! binding. Plain sequential code that owns the socket until the session is bound; each
//! stage is a type, so a stanza cannot be accepted before binding.

use std::net::SocketAddr;

use jid::{BareJid, FullJid};
use rand::distr::{Alphanumeric, SampleString};
use rempart_xep::csi;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::sasl::{channel_binding_types, mechanisms, SaslFailure};
use rempart_xep::sasl2::{self, Authenticate};
use rempart_xep::sm::{self, SmElement};
use rempart_xep::stanza::{error_reply, iq_result, Condition, IqType, StanzaError};
use rempart_xep::stream::{features, StreamError, StreamErrorCondition, StreamHeader};
use tokio::io::{split, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::c2s::resumption::{Lookup, Sasl2Reply, Takeover};
use crate::c2s::C2sContext;
use crate::config::ListenerConfig;
use crate::net::transport::Transport;
use crate::router::{SessionCommand, SessionHandle};
use crate::sasl::channel_binding::ChannelBindings;
use crate::sasl::{claimed_username, decode_payload, encode_payload, Exchange, SaslOffer, Step};
use crate::stream::reader::{Incoming, ReadError, XmlReader};
use crate::stream::writer::XmlWriter;

mod extensible;

/// How negotiation ended without a session.
#[derive(Debug, thiserror::Error)]
pub enum NegotiationEnd {
    /// The stream was closed with this error (already written to the peer when possible).
    #[error("stream error: {0}")]
    StreamError(StreamError),
    /// The peer went away.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The peer closed the stream before binding.
    #[error("stream closed by the client")]
    ClientClosed,
}

/// What negotiation ends with: a new session, or a connection for a session to resume.
pub enum Negotiated {
    /// A freshly bound session.
    Bound(Bound),
    /// The client resumes a live session (XEP-0198 §5).
    Resume(Resume),
}

/// A connection that takes over a live session.
pub struct Resume {
    /// The session's full JID.
    pub jid: FullJid,
    /// The SM-ID the client named.
    pub previd: String,
    /// Where the connection goes.
    pub takeover: mpsc::Sender<Takeover>,
    /// The connection, with the client's count of handled stanzas.
    pub connection: Takeover,
}

/// A bound session, ready for the session actor.
pub struct Bound {
    /// Reads the rest of the stream.
    pub reader: XmlReader<ReadHalf<Transport>>,
    /// Writes to the client.
    pub writer: XmlWriter<WriteHalf<Transport>>,
    /// The registered handle.
    pub handle: SessionHandle,
    /// Inbox of the session.
    pub inbox: mpsc::Receiver<SessionCommand>,
    /// Cancelled when the router finds the inbox full.
    pub overflow: CancellationToken,
    /// The domain the client connected to.
    pub host: String,
    /// Set when the session was bound inline by SASL2: the success the actor still sends.
    pub greeting: Option<Greeting>,
}

/// The SASL2 success of a session bound inline (XEP-0386), sent by the session actor once
/// it has set up what the client asked for with the binding.
pub struct Greeting {
    /// The mechanism's additional data.
    pub additional_data: Vec<u8>,
    /// What the client asked to set up with the binding (stream management, client state).
    pub inline: Vec<Element>,
    /// Outcomes to report beside the binding (a failed inline resumption).
    pub extra: Vec<Element>,
}

struct Stream {
    reader: XmlReader<ReadHalf<Transport>>,
    writer: XmlWriter<WriteHalf<Transport>>,
    tls: bool,
}

/// The connection's negotiation state that survives stream restarts.
struct Negotiation<'a> {
    ctx: &'a C2sContext,
    peer: SocketAddr,
    listener: &'a ListenerConfig,
    deadline: Instant,
    bindings: ChannelBindings,
    host: Option<String>,
    sasl_failures: u32,
}

/// Negotiates a client stream on an accepted connection, up to a bound session.
pub async fn negotiate(
    ctx: &C2sContext,
    transport: Transport,
    bindings: ChannelBindings,
    peer: SocketAddr,
    listener: &ListenerConfig,
) -> Result<Negotiated, NegotiationEnd> {
    let deadline = Instant::now() + ctx.negotiation_timeout();
    let mut negotiation = Negotiation {
        ctx,
        peer,
        listener,
        deadline,
        bindings,
        host: None,
        sasl_failures: 0,
    };
    let tls = transport.is_tls();
    let stream = open(transport, ctx, tls);
    let secured = negotiation.secure(stream).await?;
    match negotiation.authenticate(secured).await? {
        Authenticated::Restarted(stream, user) => negotiation.bind(stream, user).await,
        Authenticated::Sasl2(stream, success) => negotiation.after_sasl2(stream, *success).await,
    }
}

/// How authentication ended.
enum Authenticated {
    /// SASL (RFC 6120 §6): the stream was restarted; binding comes next.
    Restarted(Stream, BareJid),
    /// SASL2 (XEP-0388): no restart; the success is still to be sent, with what the client
    /// asked to be done inline.
    Sasl2(Stream, Box<Sasl2Success>),
}

/// A SASL2 exchange that succeeded.
struct Sasl2Success {
    user: BareJid,
    additional_data: Vec<u8>,
    request: Authenticate,
    /// A FAST token handed out with the success.
    token: Option<Element>,
}

/// The element names of SASL (RFC 6120) and of SASL2 (XEP-0388): the exchange is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Sasl1,
    Sasl2,
}

impl Framing {
    fn ns(self) -> &'static str {
        match self {
            Framing::Sasl1 => ns::SASL,
            Framing::Sasl2 => ns::SASL2,
        }
    }

    fn failure(self, failure: SaslFailure) -> Element {
        match self {
            Framing::Sasl1 => failure.to_element(),
            Framing::Sasl2 => sasl2::failure(failure),
        }
    }
}

fn open(transport: Transport, ctx: &C2sContext, tls: bool) -> Stream {
    let (read, write) = split(transport);
    Stream {
        reader: XmlReader::new(read, ctx.reader_limits()),
        writer: XmlWriter::new(write, ns::CLIENT),
        tls,
    }
}

impl Negotiation<'_> {
    /// Reads the client's header and answers with ours (RFC 6120 §4.2, §4.8).
    async fn open_stream(&mut self, stream: &mut Stream) -> Result<(), NegotiationEnd> {
        let header = match timeout_at(self.deadline, stream.reader.read_header()).await {
            Err(_) => {
                return self
                    .fail_before_header(stream, StreamErrorCondition::ConnectionTimeout, None)
                    .await
            }
            Ok(Err(ReadError::Closed(reason))) => return Err(NegotiationEnd::Closed(reason)),
            Ok(Err(ReadError::Stream(error))) => {
                return self
                    .fail_before_header(stream, error.condition, error.text)
                    .await
            }
            Ok(Ok(header)) => header,
        };
        let reply_to = header.from.clone();
        let check = self.check_header(&header);
        let host = header
            .to
            .clone()
            .filter(|to| self.ctx.router.config.serves(to))
            .or_else(|| self.host.clone())
            .unwrap_or_else(|| self.ctx.router.hosts().first().cloned().unwrap_or_default());
        let ours = StreamHeader {
            from: Some(host.clone()),
            to: reply_to,
            id: Some(Alphanumeric.sample_string(&mut rand::rng(), 16)),
            version: Some("1.0".to_owned()),
            lang: Some("en".to_owned()),
            content_ns: ns::CLIENT.to_owned(),
        };
        self.written(stream.writer.write_header(&ours)).await?;
        if let Err(error) = check {
            return Err(self.fatal(stream, error).await);
        }
        self.host = Some(host);
        Ok(())
    }

    fn check_header(&self, header: &StreamHeader) -> Result<(), StreamError> {
        if header.content_ns != ns::CLIENT {
            return Err(StreamError::with_text(
                StreamErrorCondition::InvalidNamespace,
                "client streams use jabber:client",
            ));
        }
        if !header.version_is_supported() {
            return Err(StreamError::with_text(
                StreamErrorCondition::UnsupportedVersion,
                "only XMPP 1.0 streams are supported",
            ));
        }
        let Some(to) = &header.to else {
            return Err(StreamError::with_text(
                StreamErrorCondition::HostUnknown,
                "the stream header has no 'to'",
            ));
        };
        if !self.ctx.router.config.serves(to) {
            return Err(StreamError::with_text(
                StreamErrorCondition::HostUnknown,
                format!("{to} is not served here"),
            ));
        }
        if self.host.as_ref().is_some_and(|host| host != to) {
            return Err(StreamError::with_text(
                StreamErrorCondition::HostUnknown,
                "the host changed on stream restart",
            ));
        }
        Ok(())
    }

    /// A stream error before any header was sent: RFC 6120 §4.9.1.2 wants ours first.
    async fn fail_before_header(
        &self,
        stream: &mut Stream,
        condition: StreamErrorCondition,
        text: Option<String>,
    ) -> Result<(), NegotiationEnd> {
        let ours = StreamHeader {
            from: self.ctx.router.hosts().first().cloned(),
            version: Some("1.0".to_owned()),
            content_ns: ns::CLIENT.to_owned(),
            ..StreamHeader::default()
        };
        let error = StreamError {
            condition,
            text,
            application: None,
        };
        self.written_before_close(async {
            stream.writer.write_header(&ours).await?;
            stream.writer.write_stream_error(&error).await
        })
        .await;
        Err(NegotiationEnd::StreamError(error))
    }

    /// Writes a stream error and closes.
    async fn fatal(&self, stream: &mut Stream, error: StreamError) -> NegotiationEnd {
        debug!(condition = error.condition.as_str(), "negotiation failed");
        self.written_before_close(stream.writer.write_stream_error(&error))
            .await;
        NegotiationEnd::StreamError(error)
    }

    /// Awaits a write within the negotiation deadline and the write timeout, so that a
    /// client that does not read cannot hold its connection slot.
    async fn written(
        &self,
        write: impl std::future::Future<Output = std::io::Result<()>>,
    ) -> Result<(), NegotiationEnd> {
        let limit = self.deadline.min(Instant::now() + self.ctx.write_timeout());
        match timeout_at(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(NegotiationEnd::Closed(error.to_string())),
            Err(_) => Err(NegotiationEnd::Closed("write timed out".into())),
        }
    }

    /// Awaits the last write before closing (a stream error, the closing tag). It has the
    /// write timeout of its own: the negotiation deadline may have passed already.
    async fn written_before_close(
        &self,
        write: impl std::future::Future<Output = std::io::Result<()>>,
    ) {
        last_write(self.ctx.write_timeout(), write).await;
    }

    async fn send(&self, stream: &mut Stream, element: Element) -> Result<(), NegotiationEnd> {
        self.written(stream.writer.write_element(&element)).await
    }

    /// Reads the next element before binding; anything but an element ends negotiation.
    async fn next_element(&self, stream: &mut Stream) -> Result<Element, NegotiationEnd> {
        loop {
            let incoming = match timeout_at(self.deadline, stream.reader.next()).await {
                Err(_) => {
                    let error = StreamError::with_text(
                        StreamErrorCondition::ConnectionTimeout,
                        "negotiation took too long",
                    );
                    return Err(self.fatal(stream, error).await);
                }
                Ok(Err(ReadError::Closed(reason))) => return Err(NegotiationEnd::Closed(reason)),
                Ok(Err(ReadError::Stream(error))) => return Err(self.fatal(stream, error).await),
                Ok(Ok(incoming)) => incoming,
            };
            match incoming {
                Incoming::Whitespace => continue,
                Incoming::StreamEnd => {
                    self.written_before_close(stream.writer.close()).await;
                    return Err(NegotiationEnd::ClientClosed);
                }
                Incoming::Element(element) => return Ok(element),
            }
        }
    }

    /// Stage 1: TLS, when the listener requires it and it is not there yet.
    async fn secure(&mut self, mut stream: Stream) -> Result<Stream, NegotiationEnd> {
        loop {
            self.open_stream(&mut stream).await?;
            if stream.tls || !self.listener.require_tls {
                return Ok(stream);
            }
            let starttls =
                Element::new("starttls", ns::TLS).child(Element::new("required", ns::TLS));
            self.send(&mut stream, features(vec![starttls])).await?;
            let element = self.next_element(&mut stream).await?;
            if !element.is("starttls", ns::TLS) {
                let error = StreamError::with_text(
                    StreamErrorCondition::PolicyViolation,
                    "STARTTLS is required before anything else",
                );
                return Err(self.fatal(&mut stream, error).await);
            }
            stream = self.upgrade(stream).await?;
        }
    }

    async fn upgrade(&mut self, mut stream: Stream) -> Result<Stream, NegotiationEnd> {
        self.send(&mut stream, Element::new("proceed", ns::TLS))
            .await?;
        let read = match stream.reader.into_inner() {
            Ok(read) => read,
            Err(ReadError::Stream(error)) => {
                self.written_before_close(stream.writer.write_stream_error(&error))
                    .await;
                return Err(NegotiationEnd::StreamError(error));
            }
            Err(ReadError::Closed(reason)) => return Err(NegotiationEnd::Closed(reason)),
        };
        let Transport::Plain(tcp) = read.unsplit(stream.writer.into_inner()) else {
            return Err(NegotiationEnd::Closed("TLS requested twice".into()));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(self.ctx.tls.starttls.clone());
        let tls = match timeout_at(self.deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                return Err(NegotiationEnd::Closed(format!("TLS handshake: {error}")))
            }
            Err(_) => return Err(NegotiationEnd::Closed("TLS handshake timed out".into())),
        };
        self.bindings = bindings_of(self.ctx, &tls);
        Ok(open(Transport::Tls(Box::new(tls)), self.ctx, true))
    }

    /// Stage 2: SASL (RFC 6120 §6), restarting the stream after success, or SASL2
    /// (XEP-0388) over TLS, without a restart.
    async fn authenticate(&mut self, mut stream: Stream) -> Result<Authenticated, NegotiationEnd> {
        let offer = SaslOffer::new(
            self.bindings.clone(),
            stream.tls,
            self.ctx.router.config.auth.allow_plain,
        );
        let mut offered = vec![mechanisms(offer.mechanism_names())];
        let binding_types = offer.binding_types();
        if !binding_types.is_empty() {
            offered.push(channel_binding_types(binding_types));
        }
        if stream.tls {
            offered.push(self.sasl2_feature(&offer));
        } else {
            offered.push(Element::new("starttls", ns::TLS));
        }
        self.send(&mut stream, features(offered)).await?;
        loop {
            let element = self.next_element(&mut stream).await?;
            if element.is("starttls", ns::TLS) && !stream.tls {
                let secured = self.upgrade(stream).await?;
                let secured = self.secure(secured).await?;
                return Box::pin(self.authenticate(secured)).await;
            }
            if element.is("authenticate", ns::SASL2) && stream.tls {
                let request = match Authenticate::parse(&element) {
                    Ok(request) => request,
                    Err(error) => {
                        debug!(%error, "malformed SASL2 authenticate");
                        let failure = sasl2::failure(SaslFailure::MalformedRequest);
                        self.send(&mut stream, failure).await?;
                        self.count_failure(&mut stream).await?;
                        continue;
                    }
                };
                let (mechanism, initial) =
                    (request.mechanism.clone(), request.initial_response.clone());
                let outcome = if mechanism.starts_with("HT-") {
                    self.fast_login(&mut stream, &request).await?
                } else {
                    self.run_sasl(&mut stream, &offer, Framing::Sasl2, mechanism, initial)
                        .await?
                        .map(|(user, data)| (user, data, false))
                };
                match outcome {
                    Some((user, additional_data, rotate)) => {
                        info!(jid = %user, mechanism = request.mechanism, "authenticated with SASL2");
                        let token = self.hand_out_token(&user, &request, rotate).await;
                        let success = Sasl2Success {
                            user,
                            additional_data,
                            request,
                            token,
                        };
                        return Ok(Authenticated::Sasl2(stream, Box::new(success)));
                    }
                    None => {
                        self.count_failure(&mut stream).await?;
                        continue;
                    }
                }
            }
            if !element.is("auth", ns::SASL) {
                let error = StreamError::with_text(
                    StreamErrorCondition::NotAuthorized,
                    "authenticate first",
                );
                return Err(self.fatal(&mut stream, error).await);
            }
            let mechanism = element.get_attr("mechanism").unwrap_or_default().to_owned();
            let initial = match decode_payload(&element.text_content()) {
                Ok(input) if input.is_empty() => None,
                Ok(input) => Some(input),
                Err(failure) => {
                    self.send(&mut stream, Framing::Sasl1.failure(failure))
                        .await?;
                    self.count_failure(&mut stream).await?;
                    continue;
                }
            };
            let outcome = self
                .run_sasl(&mut stream, &offer, Framing::Sasl1, mechanism, initial)
                .await?;
            match outcome {
                Some((user, additional_data)) => {
                    let success =
                        Element::new("success", ns::SASL).text(encode_payload(&additional_data));
                    self.send(&mut stream, success).await?;
                    info!(jid = %user, "authenticated");
                    let mut restarted = Stream {
                        reader: stream.reader.restart(),
                        writer: stream.writer,
                        tls: stream.tls,
                    };
                    self.open_stream(&mut restarted).await?;
                    return Ok(Authenticated::Restarted(restarted, user));
                }
                None => self.count_failure(&mut stream).await?,
            }
        }
    }

    /// Counts a failed attempt; too many end the stream.
    async fn count_failure(&mut self, stream: &mut Stream) -> Result<(), NegotiationEnd> {
        self.sasl_failures += 1;
        if self.sasl_failures >= self.ctx.router.config.auth.max_failures_per_stream {
            let error = StreamError::with_text(
                StreamErrorCondition::PolicyViolation,
                "too many failed authentication attempts",
            );
            return Err(self.fatal(stream, error).await);
        }
        Ok(())
    }

    async fn sasl_failure<T>(
        &self,
        stream: &mut Stream,
        framing: Framing,
        failure: SaslFailure,
    ) -> Result<Option<T>, NegotiationEnd> {
        self.send(stream, framing.failure(failure)).await?;
        Ok(None)
    }

    /// One SASL exchange; on success the user and the mechanism's additional data (the
    /// caller sends the success), `None` when it failed (the failure was sent).
    async fn run_sasl(
        &self,
        stream: &mut Stream,
        offer: &SaslOffer,
        framing: Framing,
        mechanism: String,
        initial: Option<Vec<u8>>,
    ) -> Result<Option<(BareJid, Vec<u8>)>, NegotiationEnd> {
        if !offer.mechanism_names().contains(&mechanism.as_str()) {
            return self
                .sasl_failure(stream, framing, SaslFailure::InvalidMechanism)
                .await;
        }
        let mut input = match initial {
            Some(input) => input,
            None => match self.challenge(stream, framing, &[]).await? {
                Ok(data) => data,
                Err(failure) => return self.sasl_failure(stream, framing, failure).await,
            },
        };
        let host = self.host.clone().unwrap_or_default();
        let Some(claim) = claimed_username(&mechanism, &input) else {
            return self
                .sasl_failure(stream, framing, SaslFailure::MalformedRequest)
                .await;
        };
        let Ok(user) = BareJid::new(&format!("{}@{host}", claim.username)) else {
            return self
                .sasl_failure(stream, framing, SaslFailure::NotAuthorized)
                .await;
        };
        // Counted before the exchange, so that parallel connections share one budget.
        let throttle = &self.ctx.auth_throttle;
        let ticket = match throttle.begin(self.peer.ip(), user.as_str()) {
            Ok(ticket) => ticket,
            Err(throttled) => {
                info!(jid = %user, %throttled, "authentication refused before the exchange");
                return self
                    .sasl_failure(stream, framing, SaslFailure::TemporaryAuthFailure)
                    .await;
            }
        };
        let login = match self.ctx.router.accounts.login_account(&user).await {
            Ok(login) => login,
            Err(error) => {
                warn!(%error, "account lookup failed");
                throttle.withdrawn(&ticket);
                return self
                    .sasl_failure(stream, framing, SaslFailure::TemporaryAuthFailure)
                    .await;
            }
        };
        let mut exchange =
            match Exchange::start(offer, &mechanism, &claim.username, user.as_str(), login) {
                Ok(exchange) => exchange,
                Err(failure) => {
                    throttle.withdrawn(&ticket);
                    return self.sasl_failure(stream, framing, failure).await;
                }
            };
        loop {
            let (returned, step) = tokio::task::spawn_blocking(move || {
                let step = exchange.step(&input);
                (exchange, step)
            })
            .await
            .map_err(|_| NegotiationEnd::Closed("authentication task failed".into()))?;
            exchange = returned;
            match step {
                Step::Challenge(data) => match self.challenge(stream, framing, &data).await? {
                    Ok(data) => input = data,
                    Err(failure) => return self.sasl_failure(stream, framing, failure).await,
                },
                Step::Success(data) => {
                    throttle.succeeded(&ticket);
                    return Ok(Some((user, data)));
                }
                Step::Failure(failure) => {
                    info!(jid = %user, mechanism, "authentication failed");
                    return self.sasl_failure(stream, framing, failure).await;
                }
            }
        }
    }

    /// Sends a challenge and reads the response; `Err(failure)` when the client aborted or
    /// sent garbage.
    async fn challenge(
        &self,
        stream: &mut Stream,
        framing: Framing,
        data: &[u8],
    ) -> Result<Result<Vec<u8>, SaslFailure>, NegotiationEnd> {
        let challenge = match framing {
            Framing::Sasl1 => Element::new("challenge", ns::SASL).text(encode_payload(data)),
            Framing::Sasl2 => sasl2::challenge(data),
        };
        self.send(stream, challenge).await?;
        let response = self.next_element(stream).await?;
        if response.is("abort", framing.ns()) {
            return Ok(Err(SaslFailure::Aborted));
        }
        if !response.is("response", framing.ns()) {
            return Ok(Err(SaslFailure::MalformedRequest));
        }
        match framing {
            Framing::Sasl1 => Ok(decode_payload(&response.text_content())),
            Framing::Sasl2 => {
                Ok(sasl2::decode(&response.text_content())
                    .map_err(|_| SaslFailure::MalformedRequest))
            }
        }
    }

    /// Stage 3: resource binding (RFC 6120 §7), or resumption of a session (XEP-0198 §5).
    async fn bind(
        &mut self,
        mut stream: Stream,
        user: BareJid,
    ) -> Result<Negotiated, NegotiationEnd> {
        let router = &self.ctx.router;
        let mut offered = vec![
            Element::new("bind", ns::BIND),
            Element::new("session", ns::SESSION).child(Element::new("optional", ns::SESSION)),
        ];
        if router.config.stream_management.enabled {
            offered.push(sm::feature());
        }
        offered.push(csi::feature());
        offered.extend(router.registry.stream_features.iter().cloned());
        offered.push(router.registry.server_caps.clone());
        self.send(&mut stream, features(offered)).await?;
        loop {
            let element = self.next_element(&mut stream).await?;
            if element.is("resume", ns::SM) && router.config.stream_management.enabled {
                match self.resume(&mut stream, &user, &element).await? {
                    Some(found) => return Ok(take_over(stream, found, None)),
                    None => continue,
                }
            }
            let bind = element
                .is("iq", ns::CLIENT)
                .then(|| element.get_child("bind", ns::BIND))
                .flatten();
            let (Some(bind), Some(IqType::Set)) = (bind, IqType::of(&element)) else {
                let error = StreamError::with_text(
                    StreamErrorCondition::NotAuthorized,
                    "bind a resource first",
                );
                return Err(self.fatal(&mut stream, error).await);
            };
            let requested = bind
                .child_text("resource", ns::BIND)
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty());
            let resource =
                requested.unwrap_or_else(|| Alphanumeric.sample_string(&mut rand::rng(), 12));
            let Ok(full) = FullJid::new(&format!("{user}/{resource}")) else {
                let reply = error_reply(
                    &element,
                    &StanzaError::new(Condition::BadRequest).with_text("invalid resource"),
                );
                self.send(&mut stream, reply).await?;
                continue;
            };
            let (handle, inbox, overflow) = self.register(full.clone());
            let result = iq_result(
                &element,
                Some(
                    Element::new("bind", ns::BIND)
                        .child(Element::new("jid", ns::BIND).text(full.to_string())),
                ),
            );
            if let Err(end) = self.send(&mut stream, result).await {
                router.unregister_session(&handle).await;
                return Err(end);
            }
            return Ok(Negotiated::Bound(Bound {
                reader: stream.reader,
                writer: stream.writer,
                handle,
                inbox,
                overflow,
                host: self.host.clone().unwrap_or_default(),
                greeting: None,
            }));
        }
    }

    /// Registers a new session for `full`.
    fn register(
        &self,
        full: FullJid,
    ) -> (
        SessionHandle,
        mpsc::Receiver<SessionCommand>,
        CancellationToken,
    ) {
        let router = &self.ctx.router;
        let (handle, inbox, overflow) =
            SessionHandle::new(full, router.config.limits.session_queue);
        router.register_session(handle.clone());
        (handle, inbox, overflow)
    }

    /// Looks up the session a `<resume/>` names; answers `<failed/>` (with the session's
    /// last count when it is remembered) and returns `None` when it cannot be resumed.
    async fn resume(
        &self,
        stream: &mut Stream,
        user: &BareJid,
        element: &Element,
    ) -> Result<Option<Resumable>, NegotiationEnd> {
        match self.find_resumable(user, element) {
            Ok(found) => Ok(Some(found)),
            Err(failed) => {
                self.send(stream, failed).await?;
                Ok(None)
            }
        }
    }

    /// The live session a `<resume/>` names, or the `<failed/>` to answer.
    fn find_resumable(&self, user: &BareJid, element: &Element) -> Result<Resumable, Element> {
        let Ok(SmElement::Resume { previd, h }) = SmElement::parse(element) else {
            let failed = SmElement::Failed {
                h: None,
                condition: Some(Condition::BadRequest),
            };
            return Err(failed.to_element());
        };
        let handled = match self.ctx.resumptions.find(&previd, user) {
            Lookup::Live { jid, takeover } => return Ok((jid, previd, takeover, h)),
            Lookup::Ended { handled } => Some(handled),
            Lookup::Unknown => None,
        };
        debug!(%previd, "resumption refused: no such session");
        let failed = SmElement::Failed {
            h: handled,
            condition: Some(Condition::ItemNotFound),
        };
        Err(failed.to_element())
    }
}

/// A live session a `<resume/>` named: its JID, its SM-ID, where its connection goes, and
/// the client's count of handled stanzas.
type Resumable = (FullJid, String, mpsc::Sender<Takeover>, u32);

/// Hands the connection to the live session a `<resume/>` named; `sasl2` when the
/// resumption came inline with SASL2.
fn take_over(stream: Stream, found: Resumable, sasl2: Option<Sasl2Reply>) -> Negotiated {
    let (jid, previd, takeover, h) = found;
    Negotiated::Resume(Resume {
        jid,
        previd,
        takeover,
        connection: Takeover {
            reader: stream.reader,
            writer: stream.writer,
            h,
            sasl2,
        },
    })
}

/// Awaits a write that precedes closing for at most `limit`; the connection closes either way.
async fn last_write(
    limit: std::time::Duration,
    write: impl std::future::Future<Output = std::io::Result<()>>,
) {
    match timeout(limit, write).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!(%error, "closing write failed"),
        Err(_) => debug!("closing write timed out: the client does not read"),
    }
}

/// Channel-binding data of a server-side TLS stream.
pub fn bindings_of(
    ctx: &C2sContext,
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
) -> ChannelBindings {
    let (_, connection) = tls.get_ref();
    let leaf = ctx
        .tls
        .resolver
        .leaf_for(connection.server_name())
        .map(|c| c.as_ref().to_vec());
    ChannelBindings::from_connection(connection, leaf.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stream_error_to_a_peer_that_never_reads_gives_up_after_the_write_timeout() {
        // The peer end is kept but never read, and its buffer is smaller than the error.
        let (ours, _peer) = tokio::io::duplex(16);
        let mut writer = XmlWriter::new(ours, ns::CLIENT);
        let error = StreamError::with_text(StreamErrorCondition::ConnectionTimeout, "x".repeat(64));
        let finished = tokio::time::timeout(
            Duration::from_secs(20),
            last_write(Duration::from_millis(50), writer.write_stream_error(&error)),
        )
        .await;
        assert!(
            finished.is_ok(),
            "the closing write must not wait for the peer"
        );
    }
}
