//! The session actor: one task per bound session. It owns the stream state, the XEP-0198
//! counters with the unacknowledged queue, and the connection while one is attached; each
//! connection's XML reader runs in its own task.
//!
//! With resumable stream management the session outlives its connection: detached, it keeps
//! what is routed to it until a new connection takes it over (`<resume/>`) or the resumption
//! time runs out; then what the client never acknowledged goes to another resource or to
//! offline storage.

use std::sync::Arc;
use std::time::Duration;

use jid::{FullJid, Jid};
use rempart_xep::csi::ClientState;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::sasl2;
use rempart_xep::sm::{self, SmElement};
use rempart_xep::stanza::{iq_result, Condition, IqType, StanzaKind};
use rempart_xep::stanza_id::stanza_id_by;
use rempart_xep::stream::{StreamError, StreamErrorCondition};
use time::OffsetDateTime;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::c2s::acks::Acks;
use crate::c2s::csi::HeldStanzas;
use crate::c2s::hibernation::{self, SavedSession};
use crate::c2s::negotiation::{Bound, Greeting, Resume};
use crate::c2s::resumption::Takeover;
use crate::c2s::C2sContext;
use crate::net::transport::Transport;
use crate::router::{stanza_cost, PresenceState, SessionCommand, SessionHandle};
use crate::stream::reader::{Incoming, ReadError, XmlReader};
use crate::stream::writer::XmlWriter;

/// Elements buffered between a reader task and the actor.
const READER_QUEUE: usize = 8;

/// Stanzas held for an inactive client (XEP-0352) before they all go out anyway.
const MAX_HELD: usize = 500;

/// Why the session ended.
enum Exit {
    /// Write this stream error, then close.
    Error(StreamError),
    /// The client closed its stream: close ours.
    ClientClosed,
    /// The connection is gone, or the wait for resumption ran out.
    Gone,
    /// The server shuts down: a resumable session is saved, to be resumed after the restart.
    Shutdown,
}

/// What woke the actor.
enum Wake {
    Read(Option<Result<Incoming, ReadError>>),
    Command(Option<SessionCommand>),
    Takeover(Option<Box<Takeover>>),
    Timer,
    Overflow,
    Shutdown,
}

/// How the actor checks that an idle client is still there.
enum Probe {
    /// An XMPP ping (XEP-0199) with this id.
    Ping(String),
    /// An `<r/>`: any traffic answers it.
    AckRequest,
}

/// The connection attached to the session.
struct Connection {
    from_reader: mpsc::Receiver<Result<Incoming, ReadError>>,
    reader_task: JoinHandle<()>,
    writer: XmlWriter<WriteHalf<Transport>>,
}

impl Connection {
    fn attach(
        reader: XmlReader<ReadHalf<Transport>>,
        writer: XmlWriter<WriteHalf<Transport>>,
    ) -> Connection {
        let (reader_tx, from_reader) = mpsc::channel(READER_QUEUE);
        Connection {
            from_reader,
            reader_task: tokio::spawn(read_loop(reader, reader_tx)),
            writer,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader_task.abort();
    }
}

/// Stream management, once the client enabled it.
struct Managed {
    acks: Acks,
    /// The SM-ID, when the session may be resumed.
    resumable: Option<String>,
    /// An `<r/>` was sent and not answered yet.
    ack_requested: bool,
}

/// Timeouts and bounds read once from the configuration.
struct Timing {
    idle: Duration,
    ping_timeout: Duration,
    write_timeout: Duration,
    resume_timeout: Duration,
}

struct Session {
    ctx: Arc<C2sContext>,
    handle: SessionHandle,
    host: String,
    timing: Timing,
    connection: Option<Connection>,
    managed: Option<Managed>,
    takeover_tx: mpsc::Sender<Takeover>,
    takeovers: mpsc::Receiver<Takeover>,
    /// When attached: when to probe (or give up on) an idle client. When detached: when
    /// the wait for resumption ends.
    deadline: Instant,
    probe: Option<Probe>,
    pings: u64,
    /// Without stream management: a stanza whose write failed, so the client never got it.
    unwritten: Option<Element>,
    /// What waits while the client is inactive.
    held: HeldStanzas,
    /// A session restored after a restart: its saved record, kept until it is resumed or
    /// ends, so that a crash in between loses nothing.
    saved_as: Option<String>,
}

/// Runs a bound session until it ends.
pub async fn run(ctx: Arc<C2sContext>, bound: Bound) {
    let Bound {
        reader,
        writer,
        handle,
        inbox,
        overflow,
        host,
        greeting,
    } = bound;
    let mut session = Session::new(ctx, handle, host, Some(Connection::attach(reader, writer)));
    let greeted = match greeting {
        Some(greeting) => session.greet(greeting).await,
        None => None,
    };
    session.serve(inbox, &overflow, greeted).await;
}

/// Brings back a session saved at shutdown, detached, for its client to resume.
pub async fn restore(ctx: Arc<C2sContext>, jid: FullJid, saved: SavedSession) {
    let router = ctx.router.clone();
    let (handle, inbox, overflow) =
        SessionHandle::new(jid.clone(), router.config.limits.session_queue);
    router.register_session(handle.clone());
    let presence = saved
        .presence
        .as_deref()
        .and_then(|xml| Element::parse(xml).ok())
        .map(Arc::new);
    router.sessions.update(&jid, |state| {
        state.available = presence;
        state.priority = saved.priority;
        state.interested = saved.interested;
    });
    handle.status.set_attached(false);
    let unacked = saved
        .unacked_stanzas()
        .into_iter()
        .map(|stanza| {
            let cost = stanza_cost(&stanza);
            (stanza, cost)
        })
        .collect();
    let host = jid.domain().to_string();
    let mut session = Session::new(ctx, handle, host, None);
    session
        .ctx
        .resumptions
        .register_with_id(saved.id.clone(), jid, session.takeover_tx.clone());
    session.deadline = Instant::now() + Duration::from_secs(saved.seconds_left());
    session.saved_as = Some(saved.id.clone());
    session.managed = Some(Managed {
        acks: Acks::restored(saved.sent, saved.handled, unacked),
        resumable: Some(saved.id),
        ack_requested: false,
    });
    info!("session restored, waiting to be resumed");
    session.serve(inbox, &overflow, None).await;
}

/// Hands a resuming connection to its session; when the session ended in the meantime the
/// client gets `<failed/>` and the connection closes.
pub async fn hand_over(resume: Resume, write_timeout: Duration) {
    let Resume {
        previd,
        takeover,
        connection,
        ..
    } = resume;
    if let Err(mpsc::error::SendError(mut connection)) = takeover.send(connection).await {
        debug!(%previd, "the session ended before it could be resumed");
        let failed = SmElement::Failed {
            h: None,
            condition: Some(Condition::ItemNotFound),
        };
        let writer = &mut connection.writer;
        let _ = timeout(write_timeout, writer.write_element(&failed.to_element())).await;
        let _ = timeout(write_timeout, writer.close()).await;
    }
}

impl Session {
    fn new(
        ctx: Arc<C2sContext>,
        handle: SessionHandle,
        host: String,
        connection: Option<Connection>,
    ) -> Session {
        let limits = &ctx.router.config.limits;
        let timing = Timing {
            idle: Duration::from_secs(limits.idle_ping_secs),
            ping_timeout: Duration::from_secs(limits.ping_timeout_secs),
            write_timeout: Duration::from_secs(limits.write_timeout_secs),
            resume_timeout: Duration::from_secs(u64::from(
                ctx.router.config.stream_management.resume_timeout_secs,
            )),
        };
        let (takeover_tx, takeovers) = mpsc::channel(1);
        Session {
            deadline: Instant::now() + timing.idle,
            ctx,
            handle,
            host,
            timing,
            connection,
            managed: None,
            takeover_tx,
            takeovers,
            probe: None,
            pings: 0,
            unwritten: None,
            held: HeldStanzas::default(),
            saved_as: None,
        }
    }

    /// The actor's loop, to the session's end (at once when it already ended).
    async fn serve(
        mut self,
        mut inbox: mpsc::Receiver<SessionCommand>,
        overflow: &CancellationToken,
        ended: Option<Exit>,
    ) {
        if let Some(exit) = ended {
            self.end(exit, &mut inbox).await;
            return;
        }
        let exit = loop {
            let wake = self.wait(&mut inbox, overflow).await;
            if let Some(exit) = self.on(wake).await {
                break exit;
            }
        };
        self.end(exit, &mut inbox).await;
    }

    async fn wait(
        &mut self,
        inbox: &mut mpsc::Receiver<SessionCommand>,
        overflow: &CancellationToken,
    ) -> Wake {
        let deadline = self.deadline;
        let shutdown = &self.ctx.shutdown;
        let takeovers = &mut self.takeovers;
        match &mut self.connection {
            Some(connection) => tokio::select! {
                incoming = connection.from_reader.recv() => Wake::Read(incoming),
                command = inbox.recv() => Wake::Command(command),
                takeover = takeovers.recv() => Wake::Takeover(takeover.map(Box::new)),
                () = sleep_until(deadline) => Wake::Timer,
                () = overflow.cancelled() => Wake::Overflow,
                () = shutdown.cancelled() => Wake::Shutdown,
            },
            None => tokio::select! {
                command = inbox.recv() => Wake::Command(command),
                takeover = takeovers.recv() => Wake::Takeover(takeover.map(Box::new)),
                () = sleep_until(deadline) => Wake::Timer,
                () = overflow.cancelled() => Wake::Overflow,
                () = shutdown.cancelled() => Wake::Shutdown,
            },
        }
    }

    async fn on(&mut self, wake: Wake) -> Option<Exit> {
        match wake {
            Wake::Read(Some(Ok(Incoming::Element(element)))) => self.handle_incoming(element).await,
            Wake::Read(Some(Ok(Incoming::Whitespace))) => {
                self.heard_from_client();
                None
            }
            Wake::Read(Some(Ok(Incoming::StreamEnd))) => Some(Exit::ClientClosed),
            Wake::Read(Some(Err(ReadError::Stream(error)))) => Some(Exit::Error(error)),
            Wake::Read(Some(Err(ReadError::Closed(reason)))) => {
                debug!(reason, "connection closed");
                self.connection_lost()
            }
            Wake::Read(None) => self.connection_lost(),
            Wake::Command(Some(SessionCommand::Stanza { stanza, cost })) => {
                self.handle.taken(cost);
                self.deliver(stanza, cost).await
            }
            Wake::Command(Some(SessionCommand::Close(error))) => Some(Exit::Error(error)),
            Wake::Command(None) | Wake::Takeover(None) => Some(Exit::Gone),
            Wake::Takeover(Some(takeover)) => self.resume(*takeover).await,
            Wake::Timer => self.on_timer().await,
            Wake::Overflow => Some(Exit::Error(StreamError::with_text(
                StreamErrorCondition::ResourceConstraint,
                "too slow to receive its stanzas",
            ))),
            Wake::Shutdown => Some(Exit::Shutdown),
        }
    }

    fn heard_from_client(&mut self) {
        self.deadline = Instant::now() + self.timing.idle;
        if matches!(self.probe, Some(Probe::AckRequest)) {
            self.probe = None;
        }
    }

    async fn handle_incoming(&mut self, element: Element) -> Option<Exit> {
        self.heard_from_client();
        if element.ns() == ns::SM {
            return self.stream_management(&element).await;
        }
        if element.ns() == ns::CSI {
            return self.client_state(&element).await;
        }
        if StanzaKind::of(&element).is_some() {
            if let Some(managed) = &mut self.managed {
                managed.acks.handled_one();
            }
        }
        if let Some(Probe::Ping(id)) = &self.probe {
            if is_reply_to(&element, id) {
                self.probe = None;
                return None;
            }
        }
        if let Some(reply) = answer_session_iq(&element) {
            let cost = stanza_cost(&reply);
            return self.deliver(reply, cost).await;
        }
        match self
            .ctx
            .router
            .handle_from_client(&self.handle, element)
            .await
        {
            Ok(()) => None,
            Err(error) => Some(Exit::Error(error)),
        }
    }

    /// Sends a stanza to the client, unless it waits for an inactive client to come back.
    async fn deliver(&mut self, stanza: Element, cost: usize) -> Option<Exit> {
        for (stanza, cost) in self.held.pass(stanza, cost, MAX_HELD) {
            if let Some(exit) = self.send_now(stanza, cost).await {
                return Some(exit);
            }
        }
        None
    }

    /// XEP-0352: the client says whether its user is looking; on `active` what waited goes.
    async fn client_state(&mut self, element: &Element) -> Option<Exit> {
        let Some(state) = ClientState::parse(element) else {
            return Some(Exit::Error(StreamError::with_text(
                StreamErrorCondition::UnsupportedStanzaType,
                format!("<{}/> is not a client state", element.name()),
            )));
        };
        let inactive = state == ClientState::Inactive;
        self.handle.status.set_inactive(inactive);
        debug!(inactive, "client state");
        for (stanza, cost) in self.held.set_inactive(inactive) {
            if let Some(exit) = self.send_now(stanza, cost).await {
                return Some(exit);
            }
        }
        None
    }

    /// Sends a stanza to the client; with stream management it stays queued until the
    /// client acknowledges it, and a detached session only queues it.
    async fn send_now(&mut self, stanza: Element, cost: usize) -> Option<Exit> {
        let config = &self.ctx.router.config.stream_management;
        let Some(managed) = &mut self.managed else {
            let connection = self.connection.as_mut()?;
            if write(&mut connection.writer, &stanza, self.timing.write_timeout).await {
                return None;
            }
            self.unwritten = Some(stanza);
            return Some(Exit::Gone);
        };
        managed.acks.sent(stanza.clone(), cost);
        if managed.acks.len() > config.max_unacked
            || managed.acks.bytes() > config.max_unacked_bytes
        {
            return Some(Exit::Error(StreamError::with_text(
                StreamErrorCondition::ResourceConstraint,
                "too many unacknowledged stanzas",
            )));
        }
        let request = !managed.ack_requested;
        let connection = self.connection.as_mut()?;
        if !write(&mut connection.writer, &stanza, self.timing.write_timeout).await {
            return self.connection_lost();
        }
        if request {
            return self.request_ack().await;
        }
        None
    }

    async fn request_ack(&mut self) -> Option<Exit> {
        if let Some(managed) = &mut self.managed {
            managed.ack_requested = true;
        }
        self.send_nonza(SmElement::Request.to_element()).await
    }

    /// Writes an element that is not a stanza (not counted, not queued).
    async fn send_nonza(&mut self, element: Element) -> Option<Exit> {
        let connection = self.connection.as_mut()?;
        if write(&mut connection.writer, &element, self.timing.write_timeout).await {
            None
        } else {
            self.connection_lost()
        }
    }

    async fn stream_management(&mut self, element: &Element) -> Option<Exit> {
        let parsed = match SmElement::parse(element) {
            Ok(parsed) => parsed,
            Err(error) => {
                return Some(Exit::Error(StreamError::with_text(
                    StreamErrorCondition::BadFormat,
                    format!("stream management: {error}"),
                )))
            }
        };
        match parsed {
            SmElement::Enable { resume, .. } => self.enable(resume).await,
            SmElement::Request => match &self.managed {
                Some(managed) => {
                    let answer = SmElement::Answer {
                        h: managed.acks.handled(),
                    };
                    self.send_nonza(answer.to_element()).await
                }
                None => self.refuse(Condition::UnexpectedRequest).await,
            },
            SmElement::Answer { h } => {
                let managed = self.managed.as_mut()?;
                managed.ack_requested = false;
                match managed.acks.acknowledge(h) {
                    Ok(()) => None,
                    Err(too_high) => Some(Exit::Error(
                        StreamError::with_text(
                            StreamErrorCondition::UndefinedCondition,
                            "acknowledged more stanzas than were sent",
                        )
                        .with_application(sm::handled_count_too_high(too_high.h, too_high.sent)),
                    )),
                }
            }
            _ => self.refuse(Condition::UnexpectedRequest).await,
        }
    }

    async fn refuse(&mut self, condition: Condition) -> Option<Exit> {
        let failed = SmElement::Failed {
            h: None,
            condition: Some(condition),
        };
        self.send_nonza(failed.to_element()).await
    }

    async fn enable(&mut self, resume: bool) -> Option<Exit> {
        match self.start_stream_management(resume) {
            Ok(enabled) => self.send_nonza(enabled).await,
            Err(condition) => self.refuse(condition).await,
        }
    }

    /// Starts counting (and, with `resume`, makes the session resumable); the `<enabled/>`
    /// to send, or why it cannot be done.
    fn start_stream_management(&mut self, resume: bool) -> Result<Element, Condition> {
        let config = &self.ctx.router.config.stream_management;
        if !config.enabled {
            return Err(Condition::FeatureNotImplemented);
        }
        if self.managed.is_some() {
            return Err(Condition::UnexpectedRequest);
        }
        let max = config.resume_timeout_secs;
        let resumable = resume.then(|| {
            self.ctx
                .resumptions
                .register(self.handle.jid.clone(), self.takeover_tx.clone())
        });
        let enabled = SmElement::Enabled {
            id: resumable.clone(),
            resume: resumable.is_some(),
            max: resumable.is_some().then_some(max),
            location: None,
        };
        info!(resumable = resumable.is_some(), "stream management enabled");
        self.managed = Some(Managed {
            acks: Acks::default(),
            resumable,
            ack_requested: false,
        });
        Ok(enabled.to_element())
    }

    /// Sends the SASL2 success of a session bound inline (XEP-0386), after setting up what
    /// the client asked for with the binding.
    async fn greet(&mut self, greeting: Greeting) -> Option<Exit> {
        let mut enabled = Vec::new();
        for element in &greeting.inline {
            if let Ok(SmElement::Enable { resume, .. }) = SmElement::parse(element) {
                match self.start_stream_management(resume) {
                    Ok(element) => enabled.push(element),
                    Err(condition) => enabled.push(
                        SmElement::Failed {
                            h: None,
                            condition: Some(condition),
                        }
                        .to_element(),
                    ),
                }
            } else if let Some(state) = ClientState::parse(element) {
                let inactive = state == ClientState::Inactive;
                self.handle.status.set_inactive(inactive);
                self.held.set_inactive(inactive);
            } else if let Some(handler) = self.ctx.router.registry.bind_inline.get(element.ns()) {
                enabled.extend(handler.bind_inline(&self.handle, element));
            }
        }
        let mut inline = vec![sasl2::bound(enabled)];
        inline.extend(greeting.extra);
        let jid = self.handle.jid.to_string();
        info!("bound with SASL2");
        self.send_nonza(sasl2::success(&greeting.additional_data, &jid, inline))
            .await
    }

    /// The connection is gone: a resumable session waits for a new one, any other ends.
    fn connection_lost(&mut self) -> Option<Exit> {
        let Some(managed) = self.managed.as_mut().filter(|m| m.resumable.is_some()) else {
            return Some(Exit::Gone);
        };
        managed.ack_requested = false;
        self.connection = None;
        self.handle.status.set_attached(false);
        self.probe = None;
        self.deadline = Instant::now() + self.timing.resume_timeout;
        info!(
            unacked = managed.acks.len(),
            "connection lost; the session waits to be resumed"
        );
        None
    }

    async fn on_timer(&mut self) -> Option<Exit> {
        if self.connection.is_none() {
            info!("the session was not resumed in time");
            return Some(Exit::Gone);
        }
        if self.probe.is_some() {
            return match self.managed.as_ref().is_some_and(|m| m.resumable.is_some()) {
                true => self.connection_lost(),
                false => Some(Exit::Error(StreamError::with_text(
                    StreamErrorCondition::ConnectionTimeout,
                    "no answer to ping",
                ))),
            };
        }
        self.deadline = Instant::now() + self.timing.ping_timeout;
        if self.managed.is_some() {
            self.probe = Some(Probe::AckRequest);
            return self.request_ack().await;
        }
        self.pings += 1;
        let id = format!("rempart-ping-{}", self.pings);
        let ping = Element::new("iq", ns::CLIENT)
            .attr("type", "get")
            .attr("id", id.clone())
            .attr("from", self.host.clone())
            .attr("to", self.handle.jid.to_string())
            .child(Element::new("ping", ns::PING));
        self.probe = Some(Probe::Ping(id));
        self.send_nonza(ping).await
    }

    /// A new connection takes the session over: what the client acknowledged leaves the
    /// queue, the rest is sent again in order after `<resumed/>`.
    async fn resume(&mut self, takeover: Takeover) -> Option<Exit> {
        let Takeover {
            reader,
            writer,
            h,
            sasl2: sasl2_data,
        } = takeover;
        self.connection = Some(Connection::attach(reader, writer));
        self.handle.status.set_attached(true);
        self.probe = None;
        self.deadline = Instant::now() + self.timing.idle;
        let managed = self.managed.as_mut()?;
        let previd = managed.resumable.clone()?;
        managed.ack_requested = false;
        if let Err(too_high) = managed.acks.acknowledge(h) {
            return Some(Exit::Error(
                StreamError::with_text(
                    StreamErrorCondition::UndefinedCondition,
                    "acknowledged more stanzas than were sent",
                )
                .with_application(sm::handled_count_too_high(too_high.h, too_high.sent)),
            ));
        }
        let resumed = SmElement::Resumed {
            previd,
            h: managed.acks.handled(),
        };
        let again: Vec<Element> = managed.acks.unacked().cloned().collect();
        info!(resent = again.len(), "session resumed");
        self.forget_saved().await;
        let announcement = match sasl2_data {
            Some(reply) => {
                let jid = self.handle.jid.to_string();
                let mut inline = vec![resumed.to_element()];
                inline.extend(reply.extra);
                sasl2::success(&reply.additional_data, &jid, inline)
            }
            None => resumed.to_element(),
        };
        if let Some(exit) = self.send_nonza(announcement).await {
            return Some(exit);
        }
        for stanza in &again {
            let connection = self.connection.as_mut()?;
            if !write(&mut connection.writer, stanza, self.timing.write_timeout).await {
                return self.connection_lost();
            }
        }
        self.request_ack().await
    }

    /// Unregisters the session and reroutes what its client never got, before the stream
    /// closes, so that a client reconnecting at once finds it stored offline (or gets it
    /// live) instead of racing its storage.
    async fn end(mut self, exit: Exit, inbox: &mut mpsc::Receiver<SessionCommand>) {
        self.forget_saved().await;
        let router = self.ctx.router.clone();
        let resumable = self.managed.as_ref().and_then(|m| m.resumable.clone());
        let saving = matches!(exit, Exit::Shutdown) && resumable.is_some();
        let presence = if saving {
            router.set_aside_session(&self.handle)
        } else {
            router.unregister_session(&self.handle).await;
            None
        };
        let (mut leftovers, sent, handled) = match self.managed.as_mut() {
            Some(managed) => (
                managed.acks.take_unacked(),
                managed.acks.sent_count(),
                managed.acks.handled(),
            ),
            None => (self.unwritten.take().into_iter().collect(), 0, 0),
        };
        // What waited for an inactive client or sat in the inbox was never counted as sent.
        let unsent: Vec<Element> = self.held.take().into_iter().chain(drain(inbox)).collect();
        let sent = sent.wrapping_add(u32::try_from(unsent.len()).unwrap_or(u32::MAX));
        leftovers.extend(unsent);
        let mut saved = false;
        if let (true, Some(id)) = (saving, resumable.as_ref()) {
            saved = self.save(id, presence, sent, handled, &leftovers).await;
        }
        if !saved {
            if let Some(id) = &resumable {
                self.ctx.resumptions.ended(id, handled);
            }
            let account = Jid::from(self.handle.jid.to_bare());
            let syncs = self.handle.status.syncs_from_archive();
            for stanza in leftovers {
                if stanza.name() == "presence" {
                    continue;
                }
                // A client that syncs from the archive finds there what it never acknowledged;
                // storing it offline too would give it the message twice.
                if syncs && stanza_id_by(&stanza, &account).is_some() {
                    continue;
                }
                router.route(stanza).await;
            }
        }
        if let Some(mut connection) = self.connection.take() {
            finish(&mut connection.writer, exit, self.timing.write_timeout).await;
        }
    }

    /// Drops the saved record of a restored session: it is live again (resumed), or its end
    /// is handled now (saved anew or rerouted).
    async fn forget_saved(&mut self) {
        let Some(id) = self.saved_as.take() else {
            return;
        };
        if let Err(error) = hibernation::forget(&self.ctx.router, &self.handle.jid, &id).await {
            warn!(%error, "the saved record of a restored session could not be removed");
        }
    }

    /// Saves the session at shutdown so that its client can resume it after the restart;
    /// false when that failed and its stanzas must be rerouted instead.
    async fn save(
        &self,
        id: &str,
        presence: Option<PresenceState>,
        sent: u32,
        handled: u32,
        unacked: &[Element],
    ) -> bool {
        let presence = presence.unwrap_or_default();
        let resume_for = i64::from(self.ctx.router.config.stream_management.resume_timeout_secs);
        let saved = SavedSession {
            id: id.to_owned(),
            resource: self.handle.jid.resource().to_string(),
            handled,
            sent,
            unacked: unacked.iter().map(Element::to_xml).collect(),
            presence: presence.available.map(|p| p.to_xml()),
            priority: presence.priority,
            interested: presence.interested,
            resume_until: OffsetDateTime::now_utc().unix_timestamp() + resume_for,
        };
        match hibernation::save(&self.ctx.router, &self.handle.jid, saved).await {
            Ok(()) => {
                info!(
                    unacked = unacked.len(),
                    "session saved for resumption after the restart"
                );
                true
            }
            Err(error) => {
                warn!(%error, "the session could not be saved; its stanzas are rerouted");
                false
            }
        }
    }
}

/// Closes the inbox and takes what was queued but never written.
fn drain(inbox: &mut mpsc::Receiver<SessionCommand>) -> Vec<Element> {
    inbox.close();
    let mut leftovers = Vec::new();
    while let Ok(command) = inbox.try_recv() {
        if let SessionCommand::Stanza { stanza, .. } = command {
            leftovers.push(stanza);
        }
    }
    leftovers
}

/// Forwards what the reader produces; ends at the first error or at stream end.
async fn read_loop(
    mut reader: XmlReader<ReadHalf<Transport>>,
    tx: mpsc::Sender<Result<Incoming, ReadError>>,
) {
    loop {
        let item = reader.next().await;
        let last = !matches!(item, Ok(Incoming::Element(_)) | Ok(Incoming::Whitespace));
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// Writes one element; false when the connection is gone or does not take it in time.
async fn write(
    writer: &mut XmlWriter<WriteHalf<Transport>>,
    element: &Element,
    limit: Duration,
) -> bool {
    matches!(
        timeout(limit, writer.write_element(element)).await,
        Ok(Ok(()))
    )
}

async fn finish(writer: &mut XmlWriter<WriteHalf<Transport>>, exit: Exit, limit: Duration) {
    match exit {
        Exit::Error(error) => {
            info!(
                condition = error.condition.as_str(),
                "closing session with a stream error"
            );
            let _ = timeout(limit, writer.write_stream_error(&error)).await;
        }
        Exit::ClientClosed => {
            debug!("client closed its stream");
            let _ = timeout(limit, writer.close()).await;
        }
        Exit::Shutdown => {
            let error = StreamError::new(StreamErrorCondition::SystemShutdown);
            let _ = timeout(limit, writer.write_stream_error(&error)).await;
        }
        Exit::Gone => {}
    }
}

/// True when the element answers the server's ping `id`.
fn is_reply_to(element: &Element, id: &str) -> bool {
    element.is("iq", ns::CLIENT)
        && element.get_attr("id") == Some(id)
        && matches!(IqType::of(element), Some(IqType::Result | IqType::Error))
}

/// The legacy `<session/>` establishment (RFC 3921) is a no-op answered directly.
fn answer_session_iq(element: &Element) -> Option<Element> {
    if element.is("iq", ns::CLIENT)
        && IqType::of(element) == Some(IqType::Set)
        && element.has_child("session", ns::SESSION)
    {
        Some(iq_result(element, None))
    } else {
        None
    }
}
