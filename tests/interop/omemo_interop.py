"""OMEMO interop tests: slixmpp + slixmpp-omemo (python-omemo) clients against a running Rempart.

Run by tests/interop/run after the slixmpp suite, in the same server lifecycle; it uses the
same environment as slixmpp_interop.py (whose client and trace helpers it reuses) plus

    INTEROP_CAROL_PASSWORD    password of carol@DOMAIN, an account nobody has a subscription with

    python omemo_interop.py --results FILE [TEST_METHOD_NAME ...]

writes "PASSED FAILED" to FILE like the other phases.  Every test starts its clients with
a fresh in-memory OMEMO storage (so a fresh device id), except where a test reconnects the
same device; the tests therefore do not depend on each other or on their order.  alice and
bob get a mutual presence subscription if the slixmpp suite has not already made one.

The tests (class Omemo): legacy OMEMO both ways between contacts; OMEMO 2 with an SCE
envelope both ways; messages of both versions stored while the recipient is offline and
decrypted at login; a contact's new device announced by device-list notifications and able
to decrypt the next message; a non-contact fetching a bundle and starting a session.

What the OMEMO clients need from the server, all of it checked on the way:
  * PEP (XEP-0163) publish with publish-options on `urn:xmpp:omemo:2:devices`,
    `urn:xmpp:omemo:2:bundles` (one item per device), `eu.siacs.conversations.axolotl.devicelist`
    and `eu.siacs.conversations.axolotl.bundles:<device id>`;
  * items retrieval of the devices/bundles of contacts and non-contacts (open access model);
  * +notify filtering through XEP-0115 caps: device-list notifications, and the last published
    device list of each contact when a resource comes online (the plugin relies on them for
    contacts with subscription 'both': it never downloads their device lists by itself);
  * explicit subscriptions (XEP-0060 6.1) from a non-contact to the device-list nodes;
  * routing and offline storage of the encrypted messages without touching them.

Each wait is bounded (asyncio.wait_for); nothing sleeps to synchronise.  On failure the raw XML
of every client of the test is printed (INTEROP_TRACE=1 prints it for passing tests too).
"""

import argparse
import logging
import os
import sys
import unittest
from xml.etree import ElementTree as ET

from slixmpp import JID

import slixmpp_interop as base
from omemo_client import (
    DELAY_NS,
    DEVICE_LIST_NODES,
    FALLBACK,
    NAMESPACE_NAMES,
    OLD,
    TWO,
    MemoryStorage,
    OmemoMixin,
    canonical,
    device_ids_in_event,
    event_node,
    exchange_device_lists,
    recipient_device_ids,
)
from slixmpp_interop import (
    ALICE,
    BOB,
    DOMAIN,
    STANZA_TIMEOUT,
    Client,
    InteropTestCase,
    TraceLogHandler,
    TraceResult,
    from_bare,
    roster_item_state,
)

CAROL = JID(f"carol@{DOMAIN}")
base.PASSWORDS[CAROL.bare] = os.environ.get("INTEROP_CAROL_PASSWORD", "carol-secret")


class OmemoClient(OmemoMixin, Client):
    """A traced slixmpp client with slixmpp-omemo loaded on the given storage (one OMEMO device)."""

    WAIT_TIMEOUT = STANZA_TIMEOUT

    def __init__(self, label, jid, storage, password=None, **kwargs):
        super().__init__(label, jid, password, omemo_storage=storage, **kwargs)


class OmemoTestCase(InteropTestCase):
    def omemo_client(self, label, jid, storage=None, **kwargs):
        client = OmemoClient(label, jid, storage if storage is not None else MemoryStorage(), **kwargs)
        self.clients.append(client)
        return client

    async def ensure_mutual_subscription(self, alice, bob):
        """Makes sure the logged-in alice and bob have subscription 'both' with each other. The
        slixmpp suite made it already when run by tests/interop/run; otherwise (this file run
        alone on a fresh server) make it here as in RFC 6121 3.1 -- then the presence with caps
        that omemo_online() sends is an update, not the initial presence."""
        alice_items = await alice.fetch_roster()
        bob_items = await bob.fetch_roster()
        if roster_item_state(alice_items, bob.boundjid) == roster_item_state(bob_items, alice.boundjid) == (
            "subscription='both' ask=''"
        ):
            return
        # Subscription requests go to available resources (RFC 6121 3.1.3): initial presence
        # first, without caps; omemo_online() sends the presence with caps afterwards.
        alice.send_presence()
        bob.send_presence()
        await alice.fetch_roster()
        await bob.fetch_roster()
        for user, contact in ((alice, bob), (bob, alice)):
            user.send_presence(pto=contact.boundjid.bare, ptype="subscribe")
            await contact.expect("presence_subscribe", f"subscription request from {user.label}", from_bare(user.boundjid))
            contact.send_presence(pto=user.boundjid.bare, ptype="subscribed")
            await user.expect("presence_subscribed", f"approval from {contact.label}", from_bare(contact.boundjid))
        self.assertRosterHas(await alice.fetch_roster(), bob.boundjid, "both", alice.label)
        self.assertRosterHas(await bob.fetch_roster(), alice.boundjid, "both", bob.label)

    async def contacts_online(self, alice, bob):
        """Both logged in, subscribed both ways, OMEMO published, online with caps; returns
        their device ids once each knows the other's device through PEP alone
        (omemo_client.exchange_device_lists)."""
        await alice.login()
        await bob.login()
        await self.ensure_mutual_subscription(alice, bob)
        return await exchange_device_lists(alice, bob)

    def assertDecrypted(self, received, body, sender_device, receiver):
        text, device, stanza = received
        self.assertEqual(text, body, f"{receiver}: wrong plaintext in {stanza}")
        self.assertEqual(device.device_id, sender_device, f"{receiver}: decrypted, but from an unexpected device")


class Omemo(OmemoTestCase):
    async def test_legacy_omemo_between_contacts_both_ways(self):
        alice = self.omemo_client("alice", ALICE)
        bob = self.omemo_client("bob", BOB)
        alice_device, bob_device = await self.contacts_online(alice, bob)

        for sender, receiver, sender_device, receiver_device, body in (
            (alice, bob, alice_device, bob_device, "Legacy OMEMO from Alice: <ünïcødé> & 'quotes' 🔐"),
            (bob, alice, bob_device, alice_device, "Legacy OMEMO reply from Bob."),
            (alice, bob, alice_device, bob_device, "Second legacy message from Alice (established session)."),
        ):
            stanza = await sender.encrypt_legacy(receiver.boundjid.bare, body)
            self.assertIn(receiver_device, recipient_device_ids(stanza, OLD)[""], "not encrypted for the receiver")
            self.assertNotIn(body, str(stanza), "the plaintext must not be in the stanza")
            stanza.send()
            received = await receiver.receive(sender.boundjid, OLD, body)
            self.assertDecrypted(received, body, sender_device, receiver.label)
            self.assertEqual(received[2]["from"], sender.boundjid, "the server must stamp the sender's full JID")

    async def test_omemo2_with_sce_envelope_between_contacts_both_ways(self):
        alice = self.omemo_client("alice", ALICE)
        bob = self.omemo_client("bob", BOB)
        alice_device, bob_device = await self.contacts_online(alice, bob)

        for sender, receiver, sender_device, receiver_device, body in (
            (alice, bob, alice_device, bob_device, "OMEMO 2 from Alice: <ünïcødé> & 'quotes' 🔐"),
            (bob, alice, bob_device, alice_device, "OMEMO 2 reply from Bob."),
            (alice, bob, alice_device, bob_device, "Second OMEMO 2 message from Alice (established session)."),
        ):
            stanza = await sender.encrypt_omemo2(receiver.boundjid.bare, body)
            self.assertIn(receiver_device, recipient_device_ids(stanza, TWO).get(receiver.boundjid.bare, set()))
            stanza.send()
            received = await receiver.receive(sender.boundjid, TWO, body)
            self.assertDecrypted(received, body, sender_device, receiver.label)

    async def test_offline_recipient_decrypts_stored_messages_at_login(self):
        alice = self.omemo_client("alice", ALICE)
        bob_storage = MemoryStorage()
        bob = self.omemo_client("bob", BOB, bob_storage)
        alice_device, bob_device = await self.contacts_online(alice, bob)

        # bob closes his stream: the server tells alice he is gone, so no resource of his is
        # left when she sends.
        while not alice.queues["presence_unavailable"].empty():
            alice.queues["presence_unavailable"].get_nowait()
        await bob.close()
        await alice.expect("presence_unavailable", "bob's unavailable presence",
                           lambda p: p["from"].bare == BOB.bare)

        legacy_body = "Legacy OMEMO while Bob was offline."
        omemo2_body = "OMEMO 2 while Bob was offline."
        legacy = await alice.encrypt_legacy(BOB.bare, legacy_body)
        omemo2 = await alice.encrypt_omemo2(BOB.bare, omemo2_body)
        legacy.send()
        omemo2.send()
        await alice.fetch_roster()  # barrier: both messages handled by the server

        # The same device (same storage) logs in again.
        bob_again = self.omemo_client("bob-again", BOB, bob_storage)
        await bob_again.login()
        await bob_again.omemo_online()
        self.assertEqual(await bob_again.device_id(), bob_device, "the reconnected device must keep its id")

        for sent, namespace, body in ((legacy, OLD, legacy_body), (omemo2, TWO, omemo2_body)):
            received = await bob_again.receive(ALICE, namespace, f"offline {NAMESPACE_NAMES[namespace]} message")
            stanza = received[2]
            self.assertEqual(
                canonical(stanza.xml.find(f"{{{namespace}}}encrypted")),
                canonical(sent.xml.find(f"{{{namespace}}}encrypted")),
                f"the stored {NAMESPACE_NAMES[namespace]} element differs from the one alice sent",
            )
            self.assertIsNotNone(stanza.xml.find(f"{{{DELAY_NS}}}delay"), f"no XEP-0203 delay on {stanza}")
            self.assertDecrypted(received, body, alice_device, "bob-again")

    async def test_new_device_of_contact_is_announced_and_can_decrypt(self):
        alice = self.omemo_client("alice", ALICE)
        bob = self.omemo_client("bob", BOB)
        alice_device, bob_device = await self.contacts_online(alice, bob)
        # Only what arrives from now on counts as the announcement of the new device.
        start = len(alice.device_list_log)

        bob2 = self.omemo_client("bob-2", BOB)
        await bob2.login()
        await bob2.omemo_online()  # publishes its device lists before its presence
        bob2_device = await bob2.device_id()
        self.assertNotEqual(bob2_device, bob_device)

        # XEP-0163 4.3.3 rule 1: bob2's publish of each device list goes to alice (subscription 'from'
        # in bob's roster, +notify for both nodes in her caps).
        async def announced():
            return alice.announced(BOB, bob2_device, start) >= {TWO, OLD}

        await alice.wait_for_lists(
            announced,
            f"no notification of bob's device lists ({' and '.join(DEVICE_LIST_NODES.values())}) "
            f"listing his new device {bob2_device} (XEP-0163 4.3.3 rule 1)",
            start=start,
        )
        for msg, _ in alice.device_list_log[start:]:
            for namespace, ids in device_ids_in_event(msg).items():
                if msg["from"].bare == BOB.bare and bob2_device in ids:
                    self.assertEqual(event_node(msg), DEVICE_LIST_NODES[namespace])
                    self.assertIn(bob_device, ids, "the device list must keep bob's first device")
        for namespace in (TWO, OLD):
            device = await alice.known_device(BOB, bob2_device)
            self.assertIsNotNone(device, "alice's library did not take the new device from the notification")
            self.assertIn(namespace, device.namespaces)

        # alice's next messages are encrypted for both of bob's devices; the new one decrypts.
        body = "Legacy OMEMO for both of Bob's devices."
        stanza = await alice.encrypt_legacy(bob2.boundjid, body, recipients=[BOB])
        self.assertLessEqual({bob_device, bob2_device}, recipient_device_ids(stanza, OLD)[""])
        stanza.send()
        received = await bob2.receive(ALICE, OLD, "legacy message to the new device")
        self.assertDecrypted(received, body, alice_device, "bob-2")
        # The same ciphertext, to the first device, decrypts there too.
        copy = alice.make_message(mto=bob.boundjid, mbody=FALLBACK, mtype="chat")
        copy.append(ET.fromstring(ET.tostring(stanza.xml.find(f"{{{OLD}}}encrypted"))))
        copy.enable("store")
        copy.send()
        received = await bob.receive(ALICE, OLD, "the same legacy message, to the first device")
        self.assertDecrypted(received, body, alice_device, "bob")

        body = "OMEMO 2 for Bob's new device."
        stanza = await alice.encrypt_omemo2(bob2.boundjid, body)
        self.assertLessEqual({bob_device, bob2_device}, recipient_device_ids(stanza, TWO).get(BOB.bare, set()))
        stanza.send()
        received = await bob2.receive(ALICE, TWO, "OMEMO 2 message to the new device")
        self.assertDecrypted(received, body, alice_device, "bob-2")

    async def test_non_contact_fetches_bundle_and_starts_session(self):
        alice = self.omemo_client("alice", ALICE)
        carol = self.omemo_client("carol", CAROL)
        await alice.login()
        await carol.login()
        for owner, items, other in (
            ("carol", await carol.fetch_roster(), ALICE),
            ("alice", await alice.fetch_roster(), CAROL),
        ):
            self.assertEqual(
                roster_item_state(items, other), "absent", f"precondition: {other} must not be in {owner}'s roster"
            )
        await alice.omemo_online()
        await carol.omemo_online()
        alice_device = await alice.device_id()
        carol_device = await carol.device_id()

        # carol: explicit subscription to alice's device lists, device-list and bundle downloads
        # (open access model), then the key exchange.
        for namespace, body in ((OLD, "Legacy OMEMO from Carol, a stranger."), (TWO, "OMEMO 2 from Carol.")):
            if namespace == OLD:
                stanza = await carol.encrypt_legacy(ALICE.bare, body)
            else:
                stanza = await carol.encrypt_omemo2(ALICE.bare, body)
            self.assertIn(alice_device, recipient_device_ids(stanza, namespace).get("" if namespace == OLD else ALICE.bare, set()))
            stanza.send()
            received = await alice.receive(CAROL, namespace, body)
            self.assertDecrypted(received, body, carol_device, "alice")
            # XEP-0060 6.1: the plugin subscribes a non-contact explicitly and records success.
            subscribed = await carol.omemo_storage.load_primitive(f"/slixmpp/subscribed/{ALICE.bare}/{namespace}", bool)
            self.assertTrue(
                subscribed.maybe(False),
                f"carol's explicit subscription to alice's {DEVICE_LIST_NODES[namespace]} was not accepted",
            )

        # And alice answers the stranger.
        body = "Legacy OMEMO answer from Alice to Carol."
        stanza = await alice.encrypt_legacy(CAROL.bare, body)
        stanza.send()
        received = await carol.receive(ALICE, OLD, body)
        self.assertDecrypted(received, body, alice_device, "carol")


TESTS = [
    Omemo("test_legacy_omemo_between_contacts_both_ways"),
    Omemo("test_omemo2_with_sce_envelope_between_contacts_both_ways"),
    Omemo("test_offline_recipient_decrypts_stored_messages_at_login"),
    Omemo("test_new_device_of_contact_is_announced_and_can_decrypt"),
    Omemo("test_non_contact_fetches_bundle_and_starts_session"),
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
