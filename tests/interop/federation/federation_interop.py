"""Federation interop checks between Rempart and other servers (peers), driven by slixmpp.

    python federation_interop.py --results FILE --peer prosody [--peer ejabberd ...] [--omemo-peer rempart2 ...]

A user of Rempart (FED_REMPART_JID, FED_REMPART_PASSWORD, FED_REMPART_C2S_PORT) logs in to
Rempart; for each peer NAME, a user of that peer (FED_<NAME>_JID, FED_<NAME>_PASSWORD,
FED_<NAME>_C2S_PORT) logs in to it and the same scenarios run between the two, each going over
the server-to-server link.  Each check prints "NAME ... ok" or "NAME ... FAIL" (with the
reason and the client-side XML); "PASSED FAILED" goes to the results file.  Every wait is
bounded.

Then, for each --omemo-peer NAME (one of the peers, whose scenarios left both users with
subscription 'both'), OMEMO across the server link: a fresh OMEMO device of each user (the
slixmpp-omemo client of ../omemo_client.py, shared with ../omemo_interop.py) comes online; each
learns the other's device from the device-list PEP notifications alone (last published items on
presence, notifications of a publish), downloads the other's bundles of both namespaces, then
legacy OMEMO (eu.siacs.conversations.axolotl) and OMEMO 2 (urn:xmpp:omemo:2, SCE envelope) go
both ways, each decrypted to exactly the plaintext sent.
"""

import argparse
import asyncio
import logging
import os
import ssl
import sys
import time
import traceback

from slixmpp import JID, ClientXMPP
from slixmpp_omemo.xep_0384 import _download_bundle

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from omemo_client import (  # noqa: E402 - the shared OMEMO client lives in tests/interop
    NAMESPACE_NAMES,
    OLD,
    TWO,
    MemoryStorage,
    OmemoMixin,
    exchange_device_lists,
    send_and_decrypt,
)

ADDRESS = "127.0.0.1"

LOGIN_TIMEOUT = 20.0
# A first stanza to a remote domain waits for the link: SRV lookup, TCP, TLS, then SASL
# EXTERNAL or dialback (which makes the receiving server connect back to the sender's
# authoritative server).
S2S_TIMEOUT = float(os.environ.get("FED_S2S_TIMEOUT", "30"))
IQ_TIMEOUT = 10.0

TRACE = []
START = time.monotonic()


def trace(label, direction, data):
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    data = data.strip()
    if data:
        TRACE.append(f"  {time.monotonic() - START:7.3f} {label:>8} {direction} {data}")


class TraceLogHandler(logging.Handler):
    def emit(self, record):
        trace("slix", "!!", f"{record.levelname} {record.name}: {record.getMessage()}")


class Client(ClientXMPP):
    EVENTS = ("message", "presence_available", "presence_subscribe", "presence_subscribed", "presence_error")

    def __init__(self, label, jid, password, port):
        super().__init__(jid, password)
        self.label = label
        self.port = port
        self.enable_starttls = True
        self.enable_direct_tls = False
        self.enable_plaintext = False
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.ssl_context = context
        # Subscription requests are answered by the checks, as a user would.
        self.auto_authorize = None
        self.auto_subscribe = False
        self.queues = {name: asyncio.Queue() for name in self.EVENTS}
        for name in self.EVENTS:
            self.add_event_handler(name, self.queues[name].put_nowait)
        self.lifecycle = asyncio.Queue()
        for name in ("session_start", "failed_auth", "failed_all_auth", "stream_error",
                     "connection_failed", "disconnected"):
            self.add_event_handler(name, lambda p, n=name: self.lifecycle.put_nowait((n, p)))
        # Error bounces are surfaced in the failure reason.
        self.errors = []
        self.add_event_handler("message_error", lambda m: self.errors.append(str(m)))
        self.add_event_handler("presence_error", lambda p: self.errors.append(str(p)))
        # Roster pushes (type set); slixmpp raises roster_update for get results too.
        self.queues["roster_push"] = asyncio.Queue()
        self.add_event_handler(
            "roster_update",
            lambda iq: iq["type"] == "set" and self.queues["roster_push"].put_nowait(iq))

    def send_raw(self, data):
        trace(self.label, "->", data)
        super().send_raw(data)

    def data_received(self, data):
        trace(self.label, "<-", data)
        super().data_received(data)

    async def login(self):
        self.connect(host=ADDRESS, port=self.port)
        deadline = time.monotonic() + LOGIN_TIMEOUT
        while True:
            try:
                name, payload = await asyncio.wait_for(
                    self.lifecycle.get(), max(deadline - time.monotonic(), 0))
            except asyncio.TimeoutError:
                raise AssertionError(f"{self.label}: no session within {LOGIN_TIMEOUT:.0f}s") from None
            if name == "session_start":
                return
            if name in ("failed_auth", "failed_all_auth", "stream_error", "disconnected"):
                raise AssertionError(f"{self.label}: login failed: {name} {payload}")

    async def expect(self, queue, what, predicate, timeout=S2S_TIMEOUT):
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            try:
                item = await asyncio.wait_for(
                    self.queues[queue].get(), max(deadline - time.monotonic(), 0))
            except asyncio.TimeoutError:
                errors = "; ".join(self.errors) or "none"
                others = "; ".join(str(s) for s in skipped) or "none"
                raise AssertionError(
                    f"{self.label}: no {what} within {timeout:.0f}s "
                    f"(other {queue} events: {others}; errors received: {errors})") from None
            if predicate(item):
                return item
            skipped.append(item)

    async def fetch_roster(self):
        request = self.Iq()
        request["type"] = "get"
        request.enable("roster")
        iq = await request.send(timeout=IQ_TIMEOUT)
        return {JID(j).bare: item for j, item in iq["roster"]["items"].items()}

    async def close(self):
        if self.transport is None:
            self.cancel_connection_attempt()
            return
        try:
            await asyncio.wait_for(self.disconnect(wait=5), 6)
        except asyncio.TimeoutError:
            pass
        if self.transport is not None:
            self.abort()


def roster_push_for(jid, subscription):
    def matches(iq):
        return any(JID(item_jid).bare == JID(jid).bare and item["subscription"] == subscription
                   for item_jid, item in iq["roster"]["items"].items())

    return matches


def from_bare(jid):
    return lambda stanza: stanza["from"].bare == JID(jid).bare


async def check_message(sender, receiver, body):
    sender.send_message(mto=receiver.boundjid.full, mbody=body, mtype="chat")
    msg = await receiver.expect(
        "message", f"chat message from {sender.boundjid.bare}",
        lambda m: m["from"].bare == sender.boundjid.bare and m["type"] != "error")
    assert msg["body"] == body, f"body {msg['body']!r}, expected {body!r}"
    assert msg["type"] == "chat", f"type {msg['type']!r}, expected 'chat'"
    assert msg["from"].full == sender.boundjid.full, \
        f"from {msg['from']}, expected the sender's full JID {sender.boundjid.full}"


async def check_subscription(requester, contact):
    """requester asks for contact's presence; contact receives the request and approves it;
    requester receives the approval, then the contact's current presence."""
    requester.send_presence(pto=contact.boundjid.bare, ptype="subscribe")
    await contact.expect("presence_subscribe", f"subscription request from {requester.boundjid.bare}",
                         from_bare(requester.boundjid))
    contact.send_presence(pto=requester.boundjid.bare, ptype="subscribed")
    await requester.expect("presence_subscribed", f"subscription approval from {contact.boundjid.bare}",
                           from_bare(contact.boundjid))
    # RFC 6121 3.1.5: on approval the contact's server sends the contact's current presence.
    await requester.expect("presence_available",
                           f"available presence from {contact.boundjid.full} after the approval",
                           lambda p: p["from"].full == contact.boundjid.full)


async def check_mutual_presence(ours, theirs):
    """Both subscriptions done: each roster says 'both' and a fresh available presence of each
    reaches the other."""
    for client, other in ((ours, theirs), (theirs, ours)):
        # RFC 6121 pushes every change: wait for the push of the final state, then check the
        # stored roster agrees.
        await client.expect("roster_push", f"roster push with {other.boundjid.bare} in 'both'",
                            roster_push_for(other.boundjid.bare, "both"))
        items = await client.fetch_roster()
        state = items.get(other.boundjid.bare)
        sub = state["subscription"] if state is not None else None
        if sub != "both":
            raise AssertionError(f"{client.label}'s roster item for {other.boundjid.bare}: "
                                 f"subscription {sub!r}, expected 'both'")
    for client in (ours, theirs):
        while not client.queues["presence_available"].empty():
            client.queues["presence_available"].get_nowait()
    ours_status = f"{ours.label} here, for {theirs.label}"
    theirs_status = f"{theirs.label} here"
    ours.send_presence(pstatus=ours_status)
    theirs.send_presence(pstatus=theirs_status)
    await theirs.expect("presence_available", f"available presence from {ours.label}",
                        lambda p: p["from"].full == ours.boundjid.full and p["status"] == ours_status)
    await ours.expect("presence_available", f"available presence from {theirs.label}",
                      lambda p: p["from"].full == theirs.boundjid.full and p["status"] == theirs_status)


class OmemoClient(OmemoMixin, Client):
    """A traced client with slixmpp-omemo on an in-memory storage (one fresh OMEMO device)."""

    WAIT_TIMEOUT = S2S_TIMEOUT


def client_from_env(name, label=None, cls=Client, **kwargs):
    """The client of the user FED_<NAME>_JID on the server listening on FED_<NAME>_C2S_PORT."""
    prefix = f"FED_{name.upper()}_"
    return cls(label or name, JID(os.environ[prefix + "JID"]), os.environ[prefix + "PASSWORD"],
               int(os.environ[prefix + "C2S_PORT"]), **kwargs)


async def log_in(client):
    await client.login()
    client.send_presence()
    await client.fetch_roster()


class Checks:
    """Runs named checks, prints one line each (and the details of a failure), counts them."""

    def __init__(self, clients):
        self.clients = clients
        self.results = []

    async def run(self, name, coro_fn):
        mark = len(TRACE)
        for client in self.clients:
            client.errors.clear()
        try:
            await coro_fn()
        except Exception as error:  # noqa: BLE001 - report every failure the same way
            self.results.append(False)
            print(f"{name} ... FAIL")
            print(f"----- {name} failed -----")
            print("".join(traceback.format_exception_only(type(error), error)).rstrip())
            print("----- client XML during this check (seconds, client, -> sent / <- received) -----")
            print("\n".join(TRACE[mark:][-120:]) or "  (nothing)")
            print("----- end -----")
        else:
            self.results.append(True)
            print(f"{name} ... ok")
        sys.stdout.flush()
        return self.results[-1]


async def check_peer(checks, ours, theirs):
    """The federation scenarios between our user and the user of one peer server."""
    peer = theirs.label
    print(f"=== federation (Rempart <-> {peer}: {ours.boundjid.bare} <-> {theirs.jid})")
    if not await checks.run(f"{peer}_client_logs_in", lambda: log_in(theirs)):
        return
    await checks.run(f"message_rempart_to_{peer}",
                     lambda: check_message(ours, theirs, f"hello {peer}, from rempart"))
    await checks.run(f"message_{peer}_to_rempart",
                     lambda: check_message(theirs, ours, f"hello rempart, from {peer}"))
    await checks.run(f"subscription_rempart_to_{peer}_approved",
                     lambda: check_subscription(ours, theirs))
    await checks.run(f"subscription_{peer}_to_rempart_approved",
                     lambda: check_subscription(theirs, ours))
    await checks.run(f"mutual_presence_{peer}", lambda: check_mutual_presence(ours, theirs))


async def omemo_log_in(client, contact):
    """Logs in (no presence yet: omemo_online() sends it, with caps) and checks the roster item
    of the contact: subscription 'both', made by the peer's scenarios."""
    await client.login()
    item = (await client.fetch_roster()).get(JID(contact).bare)
    sub = item["subscription"] if item is not None else None
    if sub != "both":
        raise AssertionError(f"{client.label}'s roster item for {JID(contact).bare}: subscription {sub!r}, "
                             "expected 'both' (from the subscription scenarios)")


async def check_bundles(client, owner):
    """client downloads owner's bundle of each namespace (pubsub items get to owner's bare JID,
    across the server link) and finds owner's device id and identity key in it."""
    own, _ = await (await owner.session_manager()).get_own_device_information()
    for namespace in (OLD, TWO):
        what = f"{NAMESPACE_NAMES[namespace]} bundle of {owner.boundjid.bare}'s device {own.device_id}"
        try:
            bundle = await asyncio.wait_for(
                _download_bundle(client.plugin["xep_0060"], namespace, owner.boundjid.bare, own.device_id),
                S2S_TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{client.label}: no {what} within {S2S_TIMEOUT:.0f}s") from None
        except Exception as error:  # noqa: BLE001 - the library's errors wrap the IQ error
            raise AssertionError(f"{client.label}: downloading the {what} failed: {error!r} "
                                 f"(cause: {error.__cause__!r})") from error
        if bundle.device_id != own.device_id or bundle.identity_key != own.identity_key:
            raise AssertionError(f"{client.label}: the {what} names device {bundle.device_id} with another "
                                 "identity key than the device's own")


async def check_omemo_peer(checks, peer):
    """OMEMO between fresh devices of our user and the peer's, across the server link."""
    ours = client_from_env("rempart", "rempart-omemo", OmemoClient, omemo_storage=MemoryStorage())
    theirs = client_from_env(peer, f"{peer}-omemo", OmemoClient, omemo_storage=MemoryStorage())
    checks.clients.extend((ours, theirs))
    print(f"=== OMEMO across federation (Rempart <-> {peer}: {ours.jid} <-> {theirs.jid})")
    devices = {}

    async def log_in_both():
        await omemo_log_in(ours, theirs.jid)
        await omemo_log_in(theirs, ours.jid)

    async def device_lists():
        devices[ours.label], devices[theirs.label] = await exchange_device_lists(ours, theirs)

    async def bundles():
        await check_bundles(ours, theirs)
        await check_bundles(theirs, ours)

    try:
        if not await checks.run(f"omemo_{peer}_clients_log_in", log_in_both):
            return
        if not await checks.run(f"omemo_{peer}_device_lists_by_pep_across_servers", device_lists):
            return
        await checks.run(f"omemo_{peer}_bundles_across_servers", bundles)
        # Each side starts one of the sessions (and downloads the bundle it needs for it).
        for namespace, kind, sender, receiver, where in (
            (OLD, "legacy", ours, theirs, f"rempart_to_{peer}"),
            (OLD, "legacy", theirs, ours, f"{peer}_to_rempart"),
            (TWO, "omemo2", theirs, ours, f"{peer}_to_rempart"),
            (TWO, "omemo2", ours, theirs, f"rempart_to_{peer}"),
        ):
            body = f"{NAMESPACE_NAMES[namespace]} from {sender.boundjid.bare} to {receiver.boundjid.bare}: <ü> & 🔐"
            await checks.run(
                f"omemo_{kind}_{where}",
                lambda: send_and_decrypt(sender, receiver, namespace, body, devices[sender.label], devices[receiver.label]))
    finally:
        for client in (ours, theirs):
            await client.close()


async def run(peer_names, omemo_peers):
    ours = client_from_env("rempart")
    peers = [client_from_env(name) for name in peer_names]
    checks = Checks([ours, *peers])
    if await checks.run("rempart_client_logs_in", lambda: log_in(ours)):
        for theirs in peers:
            await check_peer(checks, ours, theirs)
        for peer in omemo_peers:
            await check_omemo_peer(checks, peer)
    for client in (ours, *peers):
        await client.close()
    return checks.results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    parser.add_argument("--peer", action="append", required=True,
                        help="a peer NAME, its user given by FED_<NAME>_JID, _PASSWORD, _C2S_PORT")
    parser.add_argument("--omemo-peer", action="append", default=[],
                        help="a peer NAME (also given with --peer) to run the OMEMO checks with")
    args = parser.parse_args()
    logging.getLogger().addHandler(TraceLogHandler(level=logging.WARNING))
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    results = asyncio.run(run(args.peer, args.omemo_peer))
    passed = sum(results)
    failed = len(results) - passed
    with open(args.results, "w") as out:
        out.write(f"{passed} {failed}\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
