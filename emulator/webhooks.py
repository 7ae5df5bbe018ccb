"""Telnyx's side, webhooks: a call's events in Telnyx's envelope, signed with Ed25519, POSTed.

Every event of a call (call.initiated, call.answered, call.hangup, streaming.*) goes to the call's
webhook URL with the headers Telnyx sends: ``telnyx-timestamp`` (Unix seconds) and
``telnyx-signature-ed25519``, the base64 Ed25519 signature of ``timestamp + "|" + raw body``, made
with the emulator's own key pair; ``public_key`` is what a receiver verifies with (base64 of the raw
32 bytes, as Telnyx's portal shows an account's public key). ``redeliver`` sends an event again with
the same ``data.id``, as Telnyx may.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def sign(private_key: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    """Telnyx's signature: base64 Ed25519 over ``timestamp|body``."""
    return base64.b64encode(private_key.sign(timestamp.encode() + b"|" + body)).decode()


class Sender:
    def __init__(self) -> None:
        self.say: Any = None  # the emulator's narration (python -m emulator), or None
        self.sent: list[dict[str, Any]] = []  # every event, delivered or not (for tests)
        self.deliveries: list[dict[str, Any]] = []  # every POST: url, status or error (for tests)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emulator-webhook")
        self._key = Ed25519PrivateKey.generate()
        self.public_key = base64.b64encode(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()

    def send(self, url: str | None, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        event = {
            "data": {
                "record_type": "event",
                "event_type": event_type,
                "id": str(uuid.uuid4()),
                "occurred_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "payload": payload,
            },
            "meta": {"attempt": 1, "delivered_to": url},
        }
        with self._lock:
            self.sent.append(event)
        if url:
            self._pool.submit(self._post, url, event)
        return event

    def redeliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """The same event (same data.id) delivered once more, as Telnyx retries a delivery."""
        again = copy.deepcopy(event)
        again["meta"]["attempt"] = event["meta"]["attempt"] + 1
        with self._lock:
            self.sent.append(again)
        if again["meta"]["delivered_to"]:
            self._pool.submit(self._post, again["meta"]["delivered_to"], again)
        return again

    def wait_event(self, call_control_id: str, event_type: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the call's ``event_type`` has been sent; return its payload (tests)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(call_control_id) if e["data"]["event_type"] == event_type]
            if found:
                return found[0]["data"]["payload"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event_type} for {call_control_id} in {timeout} s")
            time.sleep(0.01)

    def events(self, call_control_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.sent if call_control_id in (None, e["data"]["payload"]["call_control_id"])]

    def signed(self, event: dict[str, Any], timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The raw body and the headers Telnyx would send for ``event`` (now, or at ``timestamp``)."""
        body = json.dumps(event).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "telnyx-emulator-webhooks",
            "telnyx-timestamp": stamp,
            "telnyx-signature-ed25519": sign(self._key, stamp, body),
        }
        return body, headers

    def _post(self, url: str, event: dict[str, Any]) -> None:
        body, headers = self.signed(event)
        request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - the user's own URL
        record: dict[str, Any] = {"url": url, "event_type": event["data"]["event_type"], "id": event["data"]["id"]}
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                answer.read()
                record["status"] = answer.status
        except OSError as error:  # a webhook receiver that is down must not disturb the call
            record["error"] = f"{type(error).__name__}: {error}"
        with self._lock:
            self.deliveries.append(record)
        if self.say is not None:
            result = record.get("status") or f"NOT DELIVERED ({record.get('error')})"
            self.say(f"webhook {record['event_type']} -> {url}: {result}")

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every POST submitted so far has ended (tests)."""
        marker = self._pool.submit(lambda: None)
        marker.result(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the pool has 4 threads: a marker can finish before a POST
            with self._lock:
                pending = sum(1 for e in self.sent if e["meta"]["delivered_to"]) - len(self.deliveries)
            if pending <= 0:
                return
            time.sleep(0.01)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
