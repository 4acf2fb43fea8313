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
import asyncio
import datetime
import logging
import os
import secrets
import sys
import time
import unittest
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import oldmemo
import oldmemo.etree
import twomemo
import twomemo.etree
from omemo.storage import Just, Nothing, Storage
from slixmpp import JID
from slixmpp.plugins.base import register_plugin
from slixmpp_omemo import XEP_0384, TrustLevel

import slixmpp_interop as base
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

OLD = oldmemo.oldmemo.NAMESPACE  # eu.siacs.conversations.axolotl
TWO = twomemo.twomemo.NAMESPACE  # urn:xmpp:omemo:2
SCE = "urn:xmpp:sce:1"
DELAY_NS = "urn:xmpp:delay"
DEVICE_LIST_NODES = {TWO: "urn:xmpp:omemo:2:devices", OLD: "eu.siacs.conversations.axolotl.devicelist"}
NAMESPACE_NAMES = {TWO: "OMEMO 2", OLD: "legacy OMEMO"}

# Creating a session manager generates the keys and publishes two bundles and two device
# lists (each a download, then a publish): a dozen IQ round trips.
OMEMO_INIT_TIMEOUT = 60.0
# Encrypting or decrypting may download device lists and bundles first.
CRYPTO_TIMEOUT = 30.0
FALLBACK = "This message is OMEMO encrypted (interop test)."


class MemoryStorage(Storage):
    """The OMEMO library's key/value storage, kept in a dict for the lifetime of one device."""

    def __init__(self):
        super().__init__()
        self.data = {}

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


class OmemoPlugin(XEP_0384):
    """slixmpp-omemo with blind trust before verification, every undecided device trusted, and a
    hook telling the test when a device-list notification has been fully processed."""

    default_config = {"fallback_message": FALLBACK, "omemo_storage": None}

    @property
    def storage(self):
        return self.config["omemo_storage"]

    @property
    def _btbv_enabled(self):
        return True

    async def _devices_blindly_trusted(self, blindly_trusted, identifier):
        pass

    async def _prompt_manual_trust(self, manually_trusted, identifier):
        session_manager = await self.get_session_manager()
        for device in manually_trusted:
            await session_manager.set_trust(device.bare_jid, device.identity_key, TrustLevel.TRUSTED.value)

    async def _on_device_list_update(self, msg):
        error = None
        try:
            await super()._on_device_list_update(msg)
        except Exception as e:  # reported to the test waiting on the queue
            error = e
        finally:
            self.xmpp.device_list_processed(msg, error)
        if error is not None:
            raise error


register_plugin(OmemoPlugin)


def device_ids_in_event(msg):
    """{namespace: set of device ids} listed by the items of a PEP device-list notification."""
    found = {}
    for item in msg.xml.iter("{http://jabber.org/protocol/pubsub#event}item"):
        for device in item.iter(f"{{{TWO}}}device"):
            found.setdefault(TWO, set()).add(int(device.get("id")))
        for device in item.iter(f"{{{OLD}}}device"):
            found.setdefault(OLD, set()).add(int(device.get("id")))
    return found


def event_node(msg):
    items = msg.xml.find("{http://jabber.org/protocol/pubsub#event}event/{http://jabber.org/protocol/pubsub#event}items")
    return None if items is None else items.get("node")


def recipient_device_ids(stanza, namespace):
    """Device ids a message is encrypted for, read from its XML: {bare JID or '': set of rids}."""
    encrypted = stanza.xml.find(f"{{{namespace}}}encrypted")
    result = {}
    if encrypted is None:
        return result
    if namespace == TWO:
        for keys in encrypted.iter(f"{{{TWO}}}keys"):
            result.setdefault(keys.get("jid"), set()).update(int(k.get("rid")) for k in keys.iter(f"{{{TWO}}}key"))
    else:  # legacy OMEMO has no JID on its keys
        result[""] = {int(k.get("rid")) for k in encrypted.iter(f"{{{OLD}}}key")}
    return result


def sce_envelope(body, sender, recipient):
    """XEP-0420 (Stanza Content Encryption) envelope, the plaintext of OMEMO 2 (XEP-0384 0.8):
    the content, random padding, a timestamp and the from/to affixes the recipient checks."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rpad = secrets.token_urlsafe(secrets.randbelow(150) + 1)
    return (
        f"<envelope xmlns='{SCE}'><content><body xmlns='jabber:client'>{escape(body)}</body></content>"
        f"<rpad>{rpad}</rpad><time stamp='{stamp}'/><to jid={quoteattr(JID(recipient).bare)}/>"
        f"<from jid={quoteattr(JID(sender).bare)}/></envelope>"
    ).encode("utf-8")


def open_sce_envelope(plaintext, sender, recipient):
    """Checks the affixes of a decrypted envelope and returns its body text."""
    envelope = ET.fromstring(plaintext.decode("utf-8"))
    if envelope.tag != f"{{{SCE}}}envelope":
        raise AssertionError(f"decrypted OMEMO 2 payload is not an SCE envelope: {plaintext!r}")
    affix_from = envelope.find(f"{{{SCE}}}from")
    affix_to = envelope.find(f"{{{SCE}}}to")
    if affix_from is None or JID(affix_from.get("jid")).bare != JID(sender).bare:
        raise AssertionError(f"SCE <from/> does not name the sender {JID(sender).bare}: {plaintext!r}")
    if affix_to is None or JID(affix_to.get("jid")).bare != JID(recipient).bare:
        raise AssertionError(f"SCE <to/> does not name the recipient {JID(recipient).bare}: {plaintext!r}")
    body = envelope.find(f"{{{SCE}}}content/{{jabber:client}}body")
    if body is None:
        raise AssertionError(f"SCE envelope without <body/> in its <content/>: {plaintext!r}")
    return body.text or ""


def canonical(element):
    return ET.canonicalize(ET.tostring(element, encoding="unicode"))


class OmemoClient(Client):
    """A traced slixmpp client with slixmpp-omemo loaded on the given storage (one OMEMO device)."""

    def __init__(self, label, jid, storage, password=None, **kwargs):
        super().__init__(label, jid, password, **kwargs)
        self.use_message_ids = True  # required by slixmpp-omemo
        self.omemo_storage = storage
        # Device-list notifications (PEP events) once the plugin has processed them.
        self.device_list_log = []
        self.device_list_wakeup = asyncio.Queue()
        self.register_plugin("xep_0384", {"omemo_storage": storage})
        self.omemo = self.plugin["xep_0384"]

    def device_list_processed(self, msg, error):
        self.device_list_log.append((msg, error))
        self.device_list_wakeup.put_nowait(None)

    def describe_device_lists(self, start=0):
        seen = [
            f"{msg['from']} {event_node(msg)} {sorted(set().union(*device_ids_in_event(msg).values()))}"
            f"{' (delayed: last published item)' if msg.xml.find(f'{{{DELAY_NS}}}delay') is not None else ''}"
            f"{f' FAILED: {error!r}' if error is not None else ''}"
            for msg, error in self.device_list_log[start:]
        ]
        return "; ".join(seen) or "none"

    def announced(self, owner, device_id, start=0):
        """Namespaces whose device list, as notified by owner since log index start, lists device_id."""
        found = set()
        for msg, error in self.device_list_log[start:]:
            if error is None and msg["from"].bare == JID(owner).bare:
                found |= {ns for ns, ids in device_ids_in_event(msg).items() if device_id in ids}
        return found

    async def wait_for_lists(self, check, what, timeout=STANZA_TIMEOUT, start=0):
        """Re-evaluates the coroutine function check after each processed device-list
        notification until it returns something true; fails after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            try:
                await asyncio.wait_for(self.device_list_wakeup.get(), max(deadline - time.monotonic(), 0))
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"{self.label}: {what} within {timeout:.0f}s; device-list notifications processed: "
                    f"{self.describe_device_lists(start)}"
                ) from None

    async def omemo_online(self):
        """What an OMEMO client does at login: roster get through slixmpp (the plugin reads
        subscription states from its roster), its OMEMO data generated and published, then
        initial presence carrying XEP-0115 caps with the device-list +notify features.
        Returns the index in device_list_log where what follows the presence starts."""
        await asyncio.wait_for(self.get_roster(), STANZA_TIMEOUT)
        await self.session_manager()
        # slixmpp-omemo declares its +notify interests when the plugin loads, and slixmpp files
        # them (and the caps hash) under the JID before resource binding: the bound full JID
        # would answer disco#info without them and send presence without <c/>. Declare them
        # again now that the JID is bound and compute the caps of the full JID.
        self.plugin["xep_0163"].add_interest(list(DEVICE_LIST_NODES.values()))
        await asyncio.wait_for(self.plugin["xep_0115"].update_caps(broadcast=False), STANZA_TIMEOUT)
        start = len(self.device_list_log)
        self.send_presence()
        return start

    async def expect_last_device_lists(self, owner, device_id, start):
        """XEP-0163 4.3.3 rule 2 and 4.3.4 (send_last_published_item on_sub_and_presence):
        when a resource sends initial presence with +notify caps, the server MUST send it the
        last published item of the wanted nodes of its own account and of each contact it is
        subscribed to; owner's device lists must list device_id under both namespaces."""
        async def check():
            return self.announced(owner, device_id, start) >= {TWO, OLD}

        await self.wait_for_lists(
            check,
            f"no last published item of {JID(owner).bare}'s device lists "
            f"({' and '.join(DEVICE_LIST_NODES.values())}) listing device {device_id} after this "
            "resource's initial presence with +notify caps (XEP-0163 4.3.3 rule 2 and 4.3.4: the "
            "service MUST send the last published item to each newly-available resource that "
            "wants it, the account owner's included)",
            start=start,
        )

    async def session_manager(self):
        try:
            return await asyncio.wait_for(self.omemo.get_session_manager(), OMEMO_INIT_TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.label}: OMEMO not initialised within {OMEMO_INIT_TIMEOUT:.0f}s "
                "(device list / bundle download or publish did not complete)"
            ) from None

    async def device_id(self):
        own, _ = await (await self.session_manager()).get_own_device_information()
        return own.device_id

    async def known_device(self, jid, device_id):
        session_manager = await self.session_manager()
        devices = await asyncio.wait_for(session_manager.get_device_information(JID(jid).bare), CRYPTO_TIMEOUT)
        return next((d for d in devices if d.device_id == device_id), None)

    async def wait_for_device(self, jid, device_id, namespaces=(TWO, OLD), timeout=STANZA_TIMEOUT):
        """Waits until this client's OMEMO library knows device_id of jid under every namespace,
        from the device-list notifications it processes (it downloads nothing by itself for a
        contact with subscription 'both')."""
        async def check():
            device = await self.known_device(jid, device_id)
            return device if device is not None and set(namespaces) <= set(device.namespaces) else None

        return await self.wait_for_lists(
            check,
            f"device {device_id} of {JID(jid).bare} not known for {[NAMESPACE_NAMES[n] for n in namespaces]} "
            "(XEP-0163 4.3.3: a publish is notified to the owner's and contacts' available resources "
            "that advertise <node>+notify; a newly-available one gets the last published item)",
            timeout,
        )

    # Legacy OMEMO, through the plugin's own API.
    async def encrypt_legacy(self, to, body, recipients=None):
        """Returns the legacy OMEMO message stanza (not sent) carrying body for the devices of
        recipients (default: the bare JID of to)."""
        stanza = self.make_message(mto=JID(to), mtype="chat")
        stanza["body"] = body
        recipients = {JID(JID(r).bare) for r in (recipients or [to])}
        encrypted, errors = await asyncio.wait_for(self.omemo.encrypt_message(stanza, recipients), CRYPTO_TIMEOUT)
        if errors:
            raise AssertionError(f"{self.label}: legacy OMEMO encryption reported errors: {sorted(map(repr, errors))}")
        if encrypted is None or encrypted.xml.find(f"{{{OLD}}}encrypted") is None:
            raise AssertionError(f"{self.label}: slixmpp-omemo produced no legacy OMEMO element: {encrypted}")
        return encrypted

    # OMEMO 2, through the session manager with an SCE envelope.
    async def encrypt_omemo2(self, to, body):
        recipient = JID(JID(to).bare)
        # What encrypt_message does first: a no-op for contacts with subscription 'both' (their
        # device lists come by PEP), an explicit subscription plus a download for anyone else.
        await asyncio.wait_for(self.omemo.refresh_device_lists({recipient}), CRYPTO_TIMEOUT)
        session_manager = await self.session_manager()
        messages, errors = await asyncio.wait_for(
            session_manager.encrypt(
                frozenset({recipient.bare}),
                {TWO: sce_envelope(body, self.boundjid, recipient)},
                backend_priority_order=[TWO],
            ),
            CRYPTO_TIMEOUT,
        )
        if errors:
            raise AssertionError(f"{self.label}: OMEMO 2 encryption reported errors: {sorted(map(repr, errors))}")
        message = next((m for m in messages if m.namespace == TWO), None)
        if message is None:
            raise AssertionError(f"{self.label}: the session manager produced no OMEMO 2 message")
        stanza = self.make_message(mto=JID(to), mtype="chat")
        stanza["body"] = FALLBACK
        stanza.append(twomemo.etree.serialize_message(message))
        stanza.enable("store")
        return stanza

    async def receive(self, sender, namespace, what, timeout=CRYPTO_TIMEOUT):
        """Next OMEMO message of the namespace from sender, decrypted: (body, sending device,
        stanza). Empty OMEMO messages (key transport / ratchet forwarding that the library
        sends by itself) are decrypted and skipped."""
        deadline = time.monotonic() + timeout
        empties = 0
        while True:
            stanza = await self.expect(
                "message",
                f"{NAMESPACE_NAMES[namespace]} message from {JID(sender).bare} ({what})"
                + (f"; {empties} empty OMEMO message(s) skipped" if empties else ""),
                lambda m: m["from"].bare == JID(sender).bare and m.xml.find(f"{{{namespace}}}encrypted") is not None,
                timeout=max(deadline - time.monotonic(), 0),
            )
            remaining = max(deadline - time.monotonic(), 1)
            if namespace == OLD:
                decrypted, device = await asyncio.wait_for(self.omemo.decrypt_message(stanza), remaining)
                if stanza.xml.find(f"{{{OLD}}}encrypted/{{{OLD}}}payload") is None:
                    empties += 1
                    continue
                return decrypted["body"], device, stanza
            message = twomemo.etree.parse_message(stanza.xml.find(f"{{{TWO}}}encrypted"), stanza["from"].bare)
            session_manager = await self.session_manager()
            plaintext, device, _ = await asyncio.wait_for(session_manager.decrypt(message), remaining)
            if plaintext is None:
                empties += 1
                continue
            return open_sce_envelope(plaintext, stanza["from"], self.boundjid), device, stanza


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
        their device ids once each knows the other's device through PEP alone: alice's device
        lists reach her own resource and bob's as last published items when their presence
        arrives, bob's reach alice as notifications of his publish (which happens while she is
        online, before his presence)."""
        await alice.login()
        await bob.login()
        await self.ensure_mutual_subscription(alice, bob)
        alice_start = await alice.omemo_online()
        alice_device = await alice.device_id()
        await alice.expect_last_device_lists(alice.boundjid, alice_device, alice_start)
        bob_start = await bob.omemo_online()
        bob_device = await bob.device_id()
        await bob.expect_last_device_lists(alice.boundjid, alice_device, bob_start)
        await alice.wait_for_device(bob.boundjid, bob_device)
        await bob.wait_for_device(alice.boundjid, alice_device)
        return alice_device, bob_device

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

        # bob closes his stream: no resource of his is left.
        await bob.close()
        self.assertIsNone(bob.transport, "bob's connection should be closed")

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
