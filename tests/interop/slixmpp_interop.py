"""Interop tests: an independent XMPP client library (slixmpp) against a running Rempart.

Run by tests/interop/run, which builds and starts the server, creates the accounts and
passes everything through the environment:

    INTEROP_ADDRESS           address the listeners are bound to (127.0.0.1)
    INTEROP_DOMAIN            the XMPP domain served (localhost)
    INTEROP_STARTTLS_PORT     port of the `c2s` (STARTTLS) listener
    INTEROP_DIRECT_TLS_PORT   port of the `c2s-direct-tls` (XEP-0368) listener
    INTEROP_ALICE_PASSWORD    password of alice@DOMAIN
    INTEROP_BOB_PASSWORD      password of bob@DOMAIN

    python slixmpp_interop.py before-restart --results FILE
    python slixmpp_interop.py after-restart --results FILE

The phases share the server's state: `before-restart` runs against a fresh data directory
in the order listed in PHASES; the run script then stops the server with SIGTERM, starts it
again on the same data directory and runs `after-restart`.  Each phase writes
"PASSED FAILED" to the results file so the run script can print the overall summary.
Set INTEROP_TRACE=1 to see the XML of passing tests too.

Every wait is bounded (asyncio.wait_for); nothing sleeps to synchronise.  When a test
fails, the raw XML every client sent and received during that test is printed.
"""

import argparse
import asyncio
import logging
import os
import ssl
import sys
import time
import traceback
import unittest

from slixmpp import JID, ClientXMPP

ADDRESS = os.environ.get("INTEROP_ADDRESS", "127.0.0.1")
DOMAIN = os.environ.get("INTEROP_DOMAIN", "localhost")
STARTTLS_PORT = int(os.environ.get("INTEROP_STARTTLS_PORT", "5222"))
DIRECT_TLS_PORT = int(os.environ.get("INTEROP_DIRECT_TLS_PORT", "5223"))
ALICE = JID(f"alice@{DOMAIN}")
BOB = JID(f"bob@{DOMAIN}")
PASSWORDS = {
    ALICE.bare: os.environ.get("INTEROP_ALICE_PASSWORD", "alice-secret"),
    BOB.bare: os.environ.get("INTEROP_BOB_PASSWORD", "bob-secret"),
}

LOGIN_TIMEOUT = 20.0  # TCP + TLS + SCRAM + bind
STANZA_TIMEOUT = 10.0  # one stanza or one IQ round trip
DISCONNECT_TIMEOUT = 5.0

DELAY_NS = "urn:xmpp:delay"

# Raw XML of the running test, as (seconds since test start, client label, direction, data).
TRACE = []
_TRACE_START = [time.monotonic()]


def trace(label, direction, data):
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    TRACE.append((time.monotonic() - _TRACE_START[0], label, direction, data))


def reset_trace():
    TRACE.clear()
    _TRACE_START[0] = time.monotonic()


def format_trace():
    lines = []
    for when, label, direction, data in TRACE:
        data = data.strip()
        if data:
            lines.append(f"  {when:7.3f} {label:>12} {direction} {data}")
    return "\n".join(lines) if lines else "  (nothing was exchanged)"


class TraceLogHandler(logging.Handler):
    """Puts slixmpp's warnings and errors into the trace, next to the XML they concern."""

    def emit(self, record):
        trace("slixmpp", "!!", f"{record.levelname} {record.name}: {record.getMessage()}")


def client_ssl_context(alpn=None):
    """The server presents a generated self-signed certificate: do not verify it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


class Client(ClientXMPP):
    """A slixmpp client whose events land in queues the tests wait on with timeouts.

    Subscription requests are not answered automatically: the tests approve them
    explicitly, as a user would.
    """

    QUEUED_EVENTS = (
        "message",
        "presence_available",
        "presence_unavailable",
        "presence_subscribe",
        "presence_subscribed",
    )
    LIFECYCLE_EVENTS = (
        "session_start",
        "failed_auth",
        "failed_all_auth",
        "no_auth",
        "stream_error",
        "connection_failed",
        "disconnected",
    )

    def __init__(self, label, jid, password=None, *, direct_tls=False, sasl_mech=None):
        jid = JID(jid)
        if password is None:
            password = PASSWORDS[jid.bare]
        super().__init__(jid, password, sasl_mech=sasl_mech)
        self.label = label
        self.port = DIRECT_TLS_PORT if direct_tls else STARTTLS_PORT
        # One way to connect per client, so a test exercises exactly one listener.
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False
        # XEP-0368 section 3: direct TLS clients negotiate ALPN "xmpp-client".
        self.ssl_context = client_ssl_context(["xmpp-client"] if direct_tls else None)
        self.auto_authorize = None
        self.auto_subscribe = False
        self.queues = {name: asyncio.Queue() for name in self.QUEUED_EVENTS}
        self.queues["roster_push"] = asyncio.Queue()
        self.lifecycle = asyncio.Queue()
        for name in self.QUEUED_EVENTS:
            self.add_event_handler(name, self.queues[name].put_nowait)
        for name in self.LIFECYCLE_EVENTS:
            self.add_event_handler(name, lambda payload, name=name: self.lifecycle.put_nowait((name, payload)))
        self.add_event_handler("roster_update", self._on_roster_update)

    def _on_roster_update(self, iq):
        # slixmpp raises roster_update for roster pushes (type set) and get results.
        if iq["type"] == "set":
            self.queues["roster_push"].put_nowait(iq)

    # Raw XML trace, labelled per client.
    def send_raw(self, data):
        trace(self.label, "->", data)
        super().send_raw(data)

    def data_received(self, data):
        trace(self.label, "<-", data)
        super().data_received(data)

    # Connection helpers.
    async def login(self):
        """Connects, authenticates and binds; fails the test unless the session starts."""
        self.connect(host=ADDRESS, port=self.port)
        name, payload = await self.next_lifecycle(
            ("session_start", "failed_auth", "failed_all_auth", "no_auth", "stream_error", "disconnected"),
            LOGIN_TIMEOUT,
            "the session to start",
        )
        if name != "session_start":
            raise AssertionError(f"{self.label}: login failed: {name} {payload}")
        if self.transport.get_extra_info("ssl_object") is None:
            raise AssertionError(f"{self.label}: session started without TLS")

    async def next_lifecycle(self, names, timeout, what):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                name, payload = await asyncio.wait_for(self.lifecycle.get(), max(remaining, 0))
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"{self.label}: no {what} within {timeout:.0f}s (connection events seen: {seen or 'none'})"
                ) from None
            if name in names:
                return name, payload
            seen.append(name)

    async def go_online(self):
        """Sends initial presence, then uses an IQ round trip as a barrier: the server
        handles one stream's stanzas in order (RFC 6120 section 10.1), so once the roster
        result arrives the presence has been processed. Returns the roster items."""
        self.send_presence()
        return await self.fetch_roster()

    async def fetch_roster(self):
        """Roster get without a version (RFC 6121 2.1.3), so the server must answer with
        the whole roster; returns {bare JID: item} as the server sent it."""
        request = self.Iq()
        request["type"] = "get"
        request.enable("roster")
        iq = await request.send(timeout=STANZA_TIMEOUT)
        if iq is None or iq["type"] != "result":
            raise AssertionError(f"{self.label}: roster get did not return a result: {iq}")
        if iq.xml.find("{jabber:iq:roster}query") is None:
            raise AssertionError(f"{self.label}: roster result without <query xmlns='jabber:iq:roster'/>")
        return {JID(jid).bare: item for jid, item in iq["roster"]["items"].items()}

    async def expect(self, queue_name, what, predicate=lambda stanza: True, timeout=STANZA_TIMEOUT):
        """Next event on the named queue that satisfies predicate; others are dropped."""
        queue = self.queues[queue_name]
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                stanza = await asyncio.wait_for(queue.get(), max(remaining, 0))
            except asyncio.TimeoutError:
                others = "; ".join(str(s) for s in skipped) or "none"
                raise AssertionError(
                    f"{self.label}: no {what} within {timeout:.0f}s (other {queue_name} events: {others})"
                ) from None
            if predicate(stanza):
                return stanza
            skipped.append(stanza)

    async def close(self):
        """Closes the stream (</stream:stream>) and waits until the TCP connection is gone."""
        if self.transport is None:
            self.cancel_connection_attempt()
            return
        try:
            await asyncio.wait_for(self.disconnect(wait=DISCONNECT_TIMEOUT), DISCONNECT_TIMEOUT + 1)
        except asyncio.TimeoutError:
            self.abort()
        if self.transport is not None:
            self.abort()


def roster_item_state(items, jid):
    item = items.get(JID(jid).bare)
    if item is None:
        return "absent"
    return f"subscription={item['subscription']!r} ask={item['ask']!r}"


class InteropTestCase(unittest.IsolatedAsyncioTestCase):
    """Each test opens its own connections and closes them all at the end."""

    def setUp(self):
        reset_trace()
        self.clients = []

    def client(self, label, jid, password=None, **kwargs):
        client = Client(label, jid, password, **kwargs)
        self.clients.append(client)
        return client

    async def asyncTearDown(self):
        for client in self.clients:
            await client.close()

    def assertRosterHas(self, items, jid, subscription, owner):
        item = items.get(JID(jid).bare)
        self.assertIsNotNone(item, f"{owner}'s roster has no item for {jid}: {sorted(items)}")
        self.assertEqual(
            (item["subscription"], item["ask"]),
            (subscription, ""),
            f"{owner}'s roster item for {jid} is {roster_item_state(items, jid)}, expected "
            f"subscription={subscription!r} and no ask",
        )


def from_bare(jid):
    return lambda stanza: stanza["from"].bare == JID(jid).bare


def roster_push_for(jid, subscription):
    def matches(iq):
        for item_jid, item in iq["roster"]["items"].items():
            if JID(item_jid).bare == JID(jid).bare:
                return item["subscription"] == subscription and not item["ask"]
        return False

    return matches


class BeforeRestart(InteropTestCase):
    async def test_starttls_login_mutual_subscription_reaches_both_with_presence(self):
        alice = self.client("alice", ALICE)
        bob = self.client("bob", BOB)
        await alice.login()
        await bob.login()
        alice_items = await alice.go_online()
        bob_items = await bob.go_online()
        self.assertEqual(
            roster_item_state(alice_items, BOB), "absent", "precondition: fresh data directory expected"
        )
        self.assertEqual(
            roster_item_state(bob_items, ALICE), "absent", "precondition: fresh data directory expected"
        )

        # RFC 6121 3.1: alice asks, bob approves.
        alice.send_presence(pto=BOB.bare, ptype="subscribe")
        await bob.expect("presence_subscribe", "subscription request from alice", from_bare(ALICE))
        bob.send_presence(pto=ALICE.bare, ptype="subscribed")
        await alice.expect("presence_subscribed", "subscription approval from bob", from_bare(BOB))
        # RFC 6121 3.1.5: on approval, the contact's available presence goes to the user.
        await alice.expect(
            "presence_available",
            f"available presence from bob's resource {bob.boundjid.full}",
            lambda p: p["from"] == bob.boundjid,
        )

        # And the other way round.
        bob.send_presence(pto=ALICE.bare, ptype="subscribe")
        await alice.expect("presence_subscribe", "subscription request from bob", from_bare(BOB))
        alice.send_presence(pto=BOB.bare, ptype="subscribed")
        await bob.expect("presence_subscribed", "subscription approval from alice", from_bare(ALICE))
        await bob.expect(
            "presence_available",
            f"available presence from alice's resource {alice.boundjid.full}",
            lambda p: p["from"] == alice.boundjid,
        )

        # RFC 6121 3.1.3 / 3.1.6: roster pushes tell each interested resource the new state.
        await alice.expect("roster_push", "roster push with bob in subscription 'both'", roster_push_for(BOB, "both"))
        await bob.expect("roster_push", "roster push with alice in subscription 'both'", roster_push_for(ALICE, "both"))
        self.assertRosterHas(await alice.fetch_roster(), BOB, "both", "alice")
        self.assertRosterHas(await bob.fetch_roster(), ALICE, "both", "bob")

    async def test_chat_messages_are_delivered_both_ways_with_body_and_sender(self):
        alice = self.client("alice", ALICE)
        bob = self.client("bob", BOB)
        await alice.login()
        await bob.login()
        await alice.go_online()
        await bob.go_online()

        # To the bare JID (RFC 6121 8.5.2.1.1: delivered to the available resource).
        alice.send_message(mto=BOB.bare, mbody="Hello Bob, this is Alice.", mtype="chat")
        message = await bob.expect("message", "message from alice", from_bare(ALICE))
        self.assertEqual(message["body"], "Hello Bob, this is Alice.")
        self.assertEqual(message["type"], "chat")
        # RFC 6120 8.1.2.1: the server stamps the sender's full JID.
        self.assertEqual(message["from"], alice.boundjid, "from must be alice's full JID")

        # To the full JID (RFC 6121 8.5.3.1).
        bob.send_message(mto=alice.boundjid.full, mbody="Hi Alice! <Bob> & co.", mtype="chat")
        message = await alice.expect("message", "message from bob", from_bare(BOB))
        self.assertEqual(message["body"], "Hi Alice! <Bob> & co.")
        self.assertEqual(message["type"], "chat")
        self.assertEqual(message["from"], bob.boundjid, "from must be bob's full JID")

    async def test_messages_to_offline_contact_are_delivered_at_next_login_in_order_with_delay(self):
        alice = self.client("alice", ALICE)
        bob = self.client("bob", BOB)
        await alice.login()
        await bob.login()
        await alice.go_online()
        await bob.go_online()

        # bob closes his stream; the server answers with its own </stream:stream> and
        # closes the connection (RFC 6120 4.4), after which he has no session.
        await asyncio.wait_for(bob.disconnect(wait=DISCONNECT_TIMEOUT), DISCONNECT_TIMEOUT + 1)
        self.assertIsNone(bob.transport, "bob's connection should be closed")

        bodies = ["Offline message 1", "Offline message 2", "Offline message 3"]
        for body in bodies:
            alice.send_message(mto=BOB.bare, mbody=body, mtype="chat")
        # Barrier: alice's messages have been handled once this IQ is answered.
        await alice.fetch_roster()

        bob_again = self.client("bob-again", BOB)
        await bob_again.login()
        bob_again.send_presence()  # XEP-0160: offline messages follow initial presence
        received = []
        for index in range(len(bodies)):
            message = await bob_again.expect(
                "message",
                f"offline message {index + 1} of {len(bodies)} (got so far: {[m['body'] for m in received]})",
                from_bare(ALICE),
            )
            received.append(message)
        self.assertEqual([m["body"] for m in received], bodies, "offline messages out of order")
        for message in received:
            delay = message.xml.find(f"{{{DELAY_NS}}}delay")
            self.assertIsNotNone(delay, f"no <delay xmlns='{DELAY_NS}'/> on {message}")
            self.assertTrue(delay.get("stamp"), f"XEP-0203 delay without stamp on {message}")
            self.assertEqual(message["from"], alice.boundjid, "offline message must keep alice's full JID")

    async def test_direct_tls_login_with_alpn_gets_roster(self):
        alice = self.client("alice-tls", ALICE, direct_tls=True)
        await alice.login()
        self.assertEqual(
            alice.transport.get_extra_info("ssl_object").selected_alpn_protocol(),
            "xmpp-client",
            "XEP-0368: the server should select ALPN xmpp-client",
        )
        # The roster the first test built: bob alone, in subscription 'both'.
        items = await alice.fetch_roster()
        self.assertEqual(sorted(items), [BOB.bare], f"alice's roster over direct TLS: {sorted(items)}")
        self.assertRosterHas(items, BOB, "both", "alice")

    async def test_wrong_password_is_refused_with_not_authorized(self):
        # One mechanism only, so the refusal counts as a single failed attempt
        # (slixmpp otherwise retries with every other offered mechanism).
        mallory = self.client("wrong-pass", ALICE, "not-alices-password", sasl_mech="SCRAM-SHA-256")
        mallory.connect(host=ADDRESS, port=mallory.port)
        name, failure = await mallory.next_lifecycle(
            ("failed_auth", "session_start", "stream_error", "disconnected"),
            LOGIN_TIMEOUT,
            "answer to the authentication attempt",
        )
        self.assertEqual(name, "failed_auth", f"expected a SASL failure, got {name}: {failure}")
        # RFC 6120 6.5.10
        self.assertEqual(failure["condition"], "not-authorized")
        self.assertFalse(mallory.authenticated)
        self.assertFalse(mallory.sessionstarted)


class AfterRestart(InteropTestCase):
    async def test_roster_persists_across_restart(self):
        # The subscriptions made before the restart (first test of before-restart).
        bob = self.client("bob", BOB)
        await bob.login()
        self.assertRosterHas(await bob.fetch_roster(), ALICE, "both", "bob")
        alice = self.client("alice", ALICE)
        await alice.login()
        self.assertRosterHas(await alice.fetch_roster(), BOB, "both", "alice")


PHASES = {
    "before-restart": [
        BeforeRestart("test_starttls_login_mutual_subscription_reaches_both_with_presence"),
        BeforeRestart("test_chat_messages_are_delivered_both_ways_with_body_and_sender"),
        BeforeRestart("test_messages_to_offline_contact_are_delivered_at_next_login_in_order_with_delay"),
        BeforeRestart("test_direct_tls_login_with_alpn_gets_roster"),
        BeforeRestart("test_wrong_password_is_refused_with_not_authorized"),
    ],
    "after-restart": [
        AfterRestart("test_roster_persists_across_restart"),
    ],
}


class TraceResult(unittest.TextTestResult):
    """Prints the XML exchanged during a test right after it fails."""

    def _dump(self, test, err):
        self.stream.writeln("")
        self.stream.writeln(f"----- {test.id()} failed -----")
        self.stream.write("".join(traceback.format_exception(*err)))
        self.stream.writeln("----- XML exchanged (seconds, client, -> sent / <- received) -----")
        self.stream.writeln(format_trace())
        self.stream.writeln("----- end -----")
        self.stream.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        if os.environ.get("INTEROP_TRACE"):
            self.stream.writeln(format_trace())

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump(test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._dump(test, err)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--results", required=True, help="file receiving 'PASSED FAILED'")
    args = parser.parse_args()

    handler = TraceLogHandler(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    # unittest runs the loop in debug mode, which warns about every callback slower than
    # 0.1 s: slixmpp's pure-Python SCRAM key derivation always is.
    logging.getLogger("asyncio").setLevel(logging.ERROR)

    suite = unittest.TestSuite(PHASES[args.phase])
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=TraceResult)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    with open(args.results, "w") as out:
        out.write(f"{passed} {failed}\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
