"""The OMEMO client shared by the interop suites: slixmpp + slixmpp-omemo 2.2 (python-omemo)
with an in-memory storage, blind trust before verification, legacy OMEMO
(`eu.siacs.conversations.axolotl`) through the plugin's own API and OMEMO 2 (`urn:xmpp:omemo:2`)
through its session manager with an SCE envelope.

OmemoMixin goes before a traced slixmpp client class that provides `label`, `expect(queue,
what, predicate, timeout=...)` over an event queue named "message", and the XML trace; it is
used by omemo_interop.py (one Rempart) and federation/federation_interop.py (across servers).
Every wait is bounded (asyncio.wait_for); nothing sleeps to synchronise.
"""

import asyncio
import datetime
import secrets
import time
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



class OmemoMixin:
    """slixmpp-omemo loaded on the given storage (one OMEMO device), mixed into a traced slixmpp
    client class (listed after it). WAIT_TIMEOUT bounds waiting for device-list notifications
    and one IQ round trip: raise it where they cross server links."""

    WAIT_TIMEOUT = 10.0

    def __init__(self, *args, omemo_storage, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_message_ids = True  # required by slixmpp-omemo
        self.omemo_storage = omemo_storage
        # Device-list notifications (PEP events) once the plugin has processed them.
        self.device_list_log = []
        self.device_list_wakeup = asyncio.Queue()
        self.register_plugin("xep_0384", {"omemo_storage": omemo_storage})
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

    async def wait_for_lists(self, check, what, timeout=None, start=0):
        """Re-evaluates the coroutine function check after each processed device-list
        notification until it returns something true; fails after timeout (WAIT_TIMEOUT)."""
        timeout = self.WAIT_TIMEOUT if timeout is None else timeout
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
        await asyncio.wait_for(self.get_roster(), self.WAIT_TIMEOUT)
        await self.session_manager()
        # slixmpp-omemo declares its +notify interests when the plugin loads, and slixmpp files
        # them (and the caps hash) under the JID before resource binding: the bound full JID
        # would answer disco#info without them and send presence without <c/>. Declare them
        # again now that the JID is bound and compute the caps of the full JID.
        self.plugin["xep_0163"].add_interest(list(DEVICE_LIST_NODES.values()))
        await asyncio.wait_for(self.plugin["xep_0115"].update_caps(broadcast=False), self.WAIT_TIMEOUT)
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

    async def wait_for_device(self, jid, device_id, namespaces=(TWO, OLD), timeout=None):
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



async def exchange_device_lists(alice, bob):
    """alice and bob, logged in with subscription 'both' with each other, come online with OMEMO
    (alice first); returns their device ids once each knows the other's device through PEP
    alone: alice's device lists reach her own resource and bob's as last published items when
    their presence arrives, bob's reach alice as notifications of his publish (which happens
    while she is online, before his presence)."""
    alice_start = await alice.omemo_online()
    alice_device = await alice.device_id()
    await alice.expect_last_device_lists(alice.boundjid, alice_device, alice_start)
    bob_start = await bob.omemo_online()
    bob_device = await bob.device_id()
    await bob.expect_last_device_lists(alice.boundjid, alice_device, bob_start)
    await alice.wait_for_device(bob.boundjid, bob_device)
    await bob.wait_for_device(alice.boundjid, alice_device)
    return alice_device, bob_device


async def send_and_decrypt(sender, receiver, namespace, body, sender_device, receiver_device):
    """sender encrypts body with the namespace's OMEMO for the devices of receiver's bare JID
    and sends it to receiver's full JID; checks that receiver_device is a recipient, that the
    plaintext is not in the stanza, and that receiver decrypts exactly body from sender_device
    with the sender's full JID as from."""
    if namespace == OLD:
        stanza = await sender.encrypt_legacy(receiver.boundjid, body)
        recipients = recipient_device_ids(stanza, OLD)[""]
    else:
        stanza = await sender.encrypt_omemo2(receiver.boundjid, body)
        recipients = recipient_device_ids(stanza, TWO).get(receiver.boundjid.bare, set())
    if receiver_device not in recipients:
        raise AssertionError(f"{sender.label}: {NAMESPACE_NAMES[namespace]} message not encrypted for "
                             f"{receiver.label}'s device {receiver_device} (recipients: {sorted(recipients)})")
    if body in str(stanza):
        raise AssertionError(f"{sender.label}: the plaintext is in the stanza: {stanza}")
    stanza.send()
    text, device, received = await receiver.receive(sender.boundjid, namespace, body)
    if text != body:
        raise AssertionError(f"{receiver.label}: decrypted {text!r}, expected {body!r}: {received}")
    if device.device_id != sender_device:
        raise AssertionError(f"{receiver.label}: decrypted, but from device {device.device_id}, "
                             f"expected {sender.label}'s {sender_device}")
    if received["from"] != sender.boundjid:
        raise AssertionError(f"{receiver.label}: from {received['from']}, expected the sender's full JID "
                             f"{sender.boundjid}")
    return text, device, received
