"""Federation interop checks between Rempart and Prosody, driven by slixmpp.

    python federation_interop.py --results FILE

alice@rempart.test logs in to Rempart, bob@prosody.test logs in to Prosody; every check goes
over the server-to-server link between the two servers.  Each check prints "NAME ... ok" or
"NAME ... FAIL" (with the reason and the client-side XML); "PASSED FAILED" goes to the
results file.  Every wait is bounded.
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

ADDRESS = "127.0.0.1"
REMPART_PORT = int(os.environ["FED_REMPART_C2S_PORT"])
PROSODY_PORT = int(os.environ["FED_PROSODY_C2S_PORT"])
ALICE = JID(os.environ["FED_ALICE"])
BOB = JID(os.environ["FED_BOB"])
ALICE_PASSWORD = os.environ["FED_ALICE_PASSWORD"]
BOB_PASSWORD = os.environ["FED_BOB_PASSWORD"]

LOGIN_TIMEOUT = 20.0
# A first stanza to a remote domain waits for the link: TCP, STARTTLS, dialback (which makes
# the receiving server connect back to the sender's authoritative server).
S2S_TIMEOUT = float(os.environ.get("FED_S2S_TIMEOUT", "30"))
IQ_TIMEOUT = 10.0

TRACE = []
START = time.monotonic()


def trace(label, direction, data):
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    data = data.strip()
    if data:
        TRACE.append(f"  {time.monotonic() - START:7.3f} {label:>6} {direction} {data}")


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


async def check_mutual_presence(alice, bob):
    """Both subscriptions done: each roster says 'both' and a fresh available presence of each
    reaches the other."""
    deadline = time.monotonic() + S2S_TIMEOUT
    for client, other in ((alice, bob), (bob, alice)):
        # A roster push for the final state may trail the approval: poll, bounded.
        while True:
            items = await client.fetch_roster()
            state = items.get(other.boundjid.bare)
            sub = state["subscription"] if state is not None else None
            if sub == "both":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{client.label}'s roster item for {other.boundjid.bare}: "
                                     f"subscription {sub!r}, expected 'both'")
            await asyncio.sleep(0.2)
    for client in (alice, bob):
        while not client.queues["presence_available"].empty():
            client.queues["presence_available"].get_nowait()
    alice.send_presence(pstatus="alice here")
    bob.send_presence(pstatus="bob here")
    got = await bob.expect("presence_available", "available presence from alice",
                           lambda p: p["from"].full == alice.boundjid.full and p["status"] == "alice here")
    got = await alice.expect("presence_available", "available presence from bob",
                             lambda p: p["from"].full == bob.boundjid.full and p["status"] == "bob here")


async def run():
    results = []
    alice = Client("alice", ALICE, ALICE_PASSWORD, REMPART_PORT)
    bob = Client("bob", BOB, BOB_PASSWORD, PROSODY_PORT)

    async def check(name, coro_fn):
        mark = len(TRACE)
        alice.errors.clear()
        bob.errors.clear()
        try:
            await coro_fn()
        except Exception as error:  # noqa: BLE001 - report every failure the same way
            results.append(False)
            print(f"{name} ... FAIL")
            print(f"----- {name} failed -----")
            print("".join(traceback.format_exception_only(type(error), error)).rstrip())
            print("----- client XML during this check (seconds, client, -> sent / <- received) -----")
            print("\n".join(TRACE[mark:][-120:]) or "  (nothing)")
            print("----- end -----")
        else:
            results.append(True)
            print(f"{name} ... ok")
        sys.stdout.flush()

    async def logins():
        await alice.login()
        await bob.login()
        alice.send_presence()
        bob.send_presence()
        await alice.fetch_roster()
        await bob.fetch_roster()

    await check("both_clients_log_in", logins)
    if results[-1]:
        await check("message_rempart_to_prosody",
                    lambda: check_message(alice, bob, "hello bob, from rempart"))
        await check("message_prosody_to_rempart",
                    lambda: check_message(bob, alice, "hello alice, from prosody"))
        await check("subscription_rempart_to_prosody_approved",
                    lambda: check_subscription(alice, bob))
        await check("subscription_prosody_to_rempart_approved",
                    lambda: check_subscription(bob, alice))
        await check("mutual_presence", lambda: check_mutual_presence(alice, bob))
    await alice.close()
    await bob.close()
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    args = parser.parse_args()
    logging.getLogger().addHandler(TraceLogHandler(level=logging.WARNING))
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    results = asyncio.run(run())
    passed = sum(results)
    failed = len(results) - passed
    with open(args.results, "w") as out:
        out.write(f"{passed} {failed}\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
