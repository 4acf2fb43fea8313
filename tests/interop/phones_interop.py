"""Phone interop tests: what a user of Conversations relies on, driven by slixmpp's own plugins.

Run by tests/interop/run after the OMEMO tests, on the same server and before its restart; it
uses the environment of slixmpp_interop.py (whose client and trace helpers it reuses):

    python phones_interop.py --results FILE [TEST_METHOD_NAME ...]

writes "PASSED FAILED" to FILE like the other phases.  The tests (class Phones):

  * stream management (xep_0198): enabled with resumption; the TCP connection is cut without
    </stream:stream>, as when a phone changes network; messages sent meanwhile arrive after
    slixmpp resumes the session, each exactly once and in order;
  * message carbons (xep_0280): a second resource of the account gets a received carbon of a
    message to the first one, and a sent carbon of a message the first one sends;
  * blocking command (xep_0191): a blocked contact's message is refused with an error and never
    delivered, the blocklist is returned and pushed, unblocking restores delivery;
  * message archive (xep_0313 with xep_0059 paging): each delivered message carries the
    archive's stanza-id, and the conversation comes back from the archive page by page, in
    order.

Each test leaves the accounts as it found them (the blocklist empty again).  Every wait is
bounded; nothing sleeps to synchronise.  On failure the raw XML of every client of the test is
printed (INTEROP_TRACE=1 prints it for passing tests too).
"""

import argparse
import logging
import sys
import unittest
import uuid

from slixmpp import JID

from slixmpp_interop import (
    ADDRESS,
    ALICE,
    BOB,
    LOGIN_TIMEOUT,
    STANZA_TIMEOUT,
    Client,
    InteropTestCase,
    TraceLogHandler,
    TraceResult,
    from_bare,
)

BLOCKING_ERRORS_NS = "urn:xmpp:blocking:errors"
STANZA_ID_NS = "urn:xmpp:sid:0"


class PhoneClient(Client):
    """A traced slixmpp client with the given plugins loaded, whose plugin events are queued
    like the base client's (stream management events go to the connection lifecycle)."""

    QUEUED_EVENTS = Client.QUEUED_EVENTS + (
        "message_error",
        "carbon_received",
        "carbon_sent",
        "blocked",
        "unblocked",
    )
    LIFECYCLE_EVENTS = Client.LIFECYCLE_EVENTS + ("sm_enabled", "sm_failed", "session_resumed")

    def __init__(self, label, jid, plugins, **kwargs):
        super().__init__(label, jid, **kwargs)
        for plugin in plugins:
            self.register_plugin(plugin)

    async def cut_connection(self):
        """Drops the TCP connection without closing the stream, as a phone losing its network
        does, and waits until slixmpp has seen it go."""
        self.transport.abort()
        await self.next_lifecycle(("disconnected",), STANZA_TIMEOUT, "disconnection after the cut")

    async def resume(self):
        """Connects again; fails the test unless slixmpp resumes the former session (a
        session_start would mean the server started a new one)."""
        self.connect(host=ADDRESS, port=self.port)
        name, payload = await self.next_lifecycle(
            ("session_resumed", "sm_failed", "session_start", "failed_auth", "stream_error", "disconnected"),
            LOGIN_TIMEOUT,
            "resumption of the session",
        )
        if name != "session_resumed":
            raise AssertionError(f"{self.label}: the session was not resumed: {name} {payload}")

    def drain(self, queue_name, predicate):
        """The events already waiting on the named queue that satisfy predicate."""
        queue = self.queues[queue_name]
        found = []
        while not queue.empty():
            event = queue.get_nowait()
            if predicate(event):
                found.append(event)
        return found


def pushed_jids(push, command):
    """The JIDs of a blocklist push, the IQ-set of a block or unblock command."""
    return {JID(item["jid"]) for item in push[command]["items"]}


class Phones(InteropTestCase):
    def phone(self, label, jid, *plugins, **kwargs):
        client = PhoneClient(label, jid, plugins, **kwargs)
        self.clients.append(client)
        return client

    async def receive_bodies(self, client, sender, bodies):
        """Waits for messages from sender with the given bodies, in this order."""
        received = []
        for index in range(len(bodies)):
            message = await client.expect(
                "message",
                f"message {index + 1} of {bodies} from {sender.label} (got so far: {received})",
                from_bare(sender.boundjid),
            )
            received.append(message["body"])
        self.assertEqual(received, bodies, f"{client.label}: messages from {sender.label} out of order")

    async def test_stream_resumed_after_cut_connection_delivers_each_message_once_in_order(self):
        phone = self.phone("alice-phone", ALICE, "xep_0198")
        bob = self.phone("bob", BOB)
        await phone.login()
        _, enabled = await phone.next_lifecycle(
            ("sm_enabled", "sm_failed"), STANZA_TIMEOUT, "answer to enabling stream management"
        )
        self.assertEqual(enabled.name, "enabled", f"stream management refused: {enabled}")
        self.assertTrue(enabled["resume"], f"XEP-0198 <enabled/> without resume='true': {enabled}")
        self.assertTrue(enabled["id"], f"XEP-0198 <enabled/> without an SM-ID: {enabled}")
        await phone.go_online()
        await bob.login()
        await bob.go_online()

        before = [f"Before the cut {n}" for n in range(1, 4)]
        after = [f"While cut off {n}" for n in range(1, 4)]
        for body in before:
            bob.send_message(mto=ALICE.bare, mbody=body, mtype="chat")
        await self.receive_bodies(phone, bob, before)

        await phone.cut_connection()
        for body in after:
            bob.send_message(mto=ALICE.bare, mbody=body, mtype="chat")
        # Barrier: bob's messages have been routed once this IQ is answered, so they wait in
        # the session the phone resumes.
        await bob.fetch_roster()

        await phone.resume()
        await self.receive_bodies(phone, bob, after)
        # Barrier: anything the server sent before answering this IQ has arrived, so a
        # message delivered twice would be waiting in the queue now.
        await phone.fetch_roster()
        extra = [m["body"] for m in phone.drain("message", from_bare(BOB))]
        self.assertEqual(extra, [], "messages from bob delivered again after the resumption")

    async def test_second_resource_gets_received_and_sent_carbons(self):
        first = self.phone("alice-res1", ALICE, "xep_0280")
        second = self.phone("alice-res2", ALICE, "xep_0280")
        bob = self.phone("bob", BOB)
        for client in (first, second):
            await client.login()
            answer = await client.plugin["xep_0280"].enable(timeout=STANZA_TIMEOUT)
            self.assertEqual(answer["type"], "result", f"{client.label}: enabling carbons: {answer}")
            await client.go_online()
        await bob.login()
        await bob.go_online()

        bob.send_message(mto=first.boundjid.full, mbody="Bob to the first resource", mtype="chat")
        message = await first.expect("message", "message from bob", from_bare(BOB))
        self.assertEqual(message["body"], "Bob to the first resource")
        wrapper = await second.expect("carbon_received", "received carbon of bob's message")
        copy = wrapper["carbon_received"]
        self.assertEqual(copy["body"], "Bob to the first resource", f"received carbon: {wrapper}")
        self.assertEqual(copy["from"], bob.boundjid, f"received carbon not from bob's full JID: {wrapper}")
        self.assertEqual(copy["to"], first.boundjid, f"received carbon not to the first resource: {wrapper}")

        first.send_message(mto=BOB.bare, mbody="The first resource to Bob", mtype="chat")
        message = await bob.expect("message", "message from alice's first resource", from_bare(ALICE))
        self.assertEqual(message["body"], "The first resource to Bob")
        wrapper = await second.expect("carbon_sent", "sent carbon of the first resource's message")
        copy = wrapper["carbon_sent"]
        self.assertEqual(copy["body"], "The first resource to Bob", f"sent carbon: {wrapper}")
        self.assertEqual(copy["from"], first.boundjid, f"sent carbon not from the first resource: {wrapper}")
        self.assertEqual(copy["to"].bare, BOB.bare, f"sent carbon not to bob: {wrapper}")

    async def test_blocked_contact_is_refused_until_unblocked(self):
        alice = self.phone("alice", ALICE, "xep_0191")
        bob = self.phone("bob", BOB)
        await alice.login()
        await alice.go_online()
        await bob.login()
        await bob.go_online()
        blocking = alice.plugin["xep_0191"]
        # XEP-0191 3.2: a client fetches the list first, and gets pushes from then on.
        blocklist = await blocking.get_blocked_jids(timeout=STANZA_TIMEOUT)
        self.assertEqual(blocklist, set(), "precondition: empty blocklist")

        await blocking.block(BOB.bare, timeout=STANZA_TIMEOUT)
        push = await alice.expect("blocked", "blocklist push naming bob")
        self.assertEqual(pushed_jids(push, "block"), {JID(BOB.bare)}, f"block push: {push}")
        self.assertEqual(await blocking.get_blocked_jids(timeout=STANZA_TIMEOUT), {JID(BOB.bare)})

        # 3.3: a blocked contact's message gets an error, service-unavailable recommended.
        bob.send_message(mto=alice.boundjid.full, mbody="Blocked message from Bob", mtype="chat")
        error = await bob.expect("message_error", "error for the message to alice who blocked bob")
        self.assertEqual(error["error"]["condition"], "service-unavailable", f"refusal: {error}")
        # 3.3: the user's own message to a blocked JID is refused with <blocked/>.
        alice.send_message(mto=BOB.bare, mbody="Alice to blocked Bob", mtype="chat")
        error = await alice.expect("message_error", "error for alice's message to bob, whom she blocked")
        self.assertEqual(error["error"]["condition"], "not-acceptable", f"refusal: {error}")
        self.assertIsNotNone(
            error.xml.find(f".//{{{BLOCKING_ERRORS_NS}}}blocked"), f"refusal without <blocked/>: {error}"
        )

        await blocking.unblock(BOB.bare, timeout=STANZA_TIMEOUT)
        push = await alice.expect("unblocked", "blocklist push unblocking bob")
        self.assertEqual(pushed_jids(push, "unblock"), {JID(BOB.bare)}, f"unblock push: {push}")
        self.assertEqual(await blocking.get_blocked_jids(timeout=STANZA_TIMEOUT), set())
        # bob's messages reach alice in the order the server handled them, so the first one she
        # gets being the one sent after the unblock shows the blocked one was never delivered.
        bob.send_message(mto=alice.boundjid.full, mbody="Bob after the unblock", mtype="chat")
        # (The error answering her own message above carries its body: slixmpp queues it as a
        # message too.)
        message = await alice.expect(
            "message",
            "message from bob after the unblock",
            lambda m: m["type"] != "error" and m["from"].bare == BOB.bare,
        )
        self.assertEqual(message["body"], "Bob after the unblock", "alice got bob's message sent while blocked")


    async def test_history_comes_back_from_the_archive_page_by_page(self):
        alice = self.phone("alice", ALICE, "xep_0059", "xep_0313")
        bob = self.phone("bob", BOB)
        await alice.login()
        await alice.go_online()
        await bob.login()
        await bob.go_online()
        # The archive outlives each test: this run's messages are told apart by a token.
        token = uuid.uuid4().hex
        sent = [f"archived {n} {token}" for n in range(3)]
        for body in sent:
            bob.send_message(mto=alice.boundjid.full, mbody=body, mtype="chat")
            message = await alice.expect(
                "message", f"delivery of {body!r}", lambda m, body=body: m["body"] == body
            )
            stanza_id = message.xml.find(f"{{{STANZA_ID_NS}}}stanza-id")
            self.assertIsNotNone(stanza_id, f"delivered without a stanza-id: {message}")
            self.assertEqual(stanza_id.get("by"), ALICE.bare, f"stanza-id not by the archive: {message}")

        found = []
        archive = alice.plugin["xep_0313"]
        async for result in archive.iterate(with_jid=JID(BOB.bare), rsm={"max": 2}):
            body = result["mam_result"]["forwarded"]["stanza"]["body"]
            if token in body:
                found.append(body)
        self.assertEqual(found, sent, "the archive's pages do not give the conversation back in order")


TESTS = [
    Phones("test_stream_resumed_after_cut_connection_delivers_each_message_once_in_order"),
    Phones("test_second_resource_gets_received_and_sent_carbons"),
    Phones("test_blocked_contact_is_refused_until_unblocked"),
    Phones("test_history_comes_back_from_the_archive_page_by_page"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="file receiving 'PASSED FAILED'")
    parser.add_argument("tests", nargs="*", help="test method names (default: all)")
    args = parser.parse_args()

    handler = TraceLogHandler(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)

    tests = [t for t in TESTS if not args.tests or t._testMethodName in args.tests]
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=TraceResult)
    result = runner.run(unittest.TestSuite(tests))
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    with open(args.results, "w") as out:
        out.write(f"{passed} {failed}\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
