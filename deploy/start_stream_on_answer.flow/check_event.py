# /// script
# requires-python = ">=3.10"
# dependencies = ["cryptography>=42,<51"]
# ///
"""Step 1 of the flow "start a stream on call.answered": check a Telnyx webhook, then decide.

Telnyx POSTs every event of a call to the same URL. This step verifies the event's Ed25519 signature
over ``telnyx-timestamp|raw body`` with your account's public key (refusing forged, altered, unsigned
and replayed events), reads Telnyx's envelope, and returns ``start: true`` with the streaming_start
arguments only for ``call.answered``. For any other event it returns ``start: false`` and why; the
flow's early stop then ends the run as "skipped", a success, without calling Telnyx.

Its inputs come from the webhook (``raw_string``, ``telnyx_signature_ed25519``, ``telnyx_timestamp``:
the webhook URL must carry ``raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp``) and
from the flow's settings (``public_key``, ``verify_signature``, ``stream_url``, ``stream_options``).
Nothing here ever prints, returns or raises the public key or the signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

TOLERANCE_S = 300  # as Telnyx's official SDK: older (or further in the future) is a replay
URL_OPTIONS = "raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp"


class TelnyxWebhookError(ValueError):
    """The event is refused before anything is sent to Telnyx; ``check`` names the check that failed."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


def main(
    raw_string: str | None = None,
    telnyx_signature_ed25519: str | None = None,
    telnyx_timestamp: str | None = None,
    public_key: str = "",
    verify_signature: bool = True,
    stream_url: str = "",
    stream_options: dict | None = None,
) -> dict:
    """Return ``{"start": bool, "event_type", "event_id", "call_control_id", "body", "why"}``."""
    if raw_string is None or raw_string == "":
        raise TelnyxWebhookError(
            "raw_string is missing: the webhook URL Telnyx posts to must end with "
            f"?token=...&{URL_OPTIONS} (raw=true hands this step the exact body Telnyx signed).",
            "raw_body",
        )
    if verify_signature:
        _verify(raw_string, telnyx_signature_ed25519, telnyx_timestamp, public_key, time.time())
    event = _envelope(raw_string)
    data = event["data"]
    event_type, event_id, payload = data["event_type"], data["id"], data["payload"]
    if event_type != "call.answered":
        return {"start": False, "event_type": event_type, "event_id": event_id, "why": _why_not(event_type, payload)}
    call_control_id = payload.get("call_control_id")
    if not isinstance(call_control_id, str) or not call_control_id.strip():
        raise TelnyxWebhookError(
            "data.payload.call_control_id is missing from this call.answered event: it cannot be streamed.",
            "envelope",
        )
    options = dict(stream_options or {})
    body = {**options, "stream_url": stream_url or options.get("stream_url"), "command_id": event_id}
    return {
        "start": True,
        "event_type": event_type,
        "event_id": event_id,
        "call_control_id": call_control_id,
        "body": {k: v for k, v in body.items() if v not in (None, "")},
        "why": "call.answered: starting the stream (command_id = the event's data.id, so a redelivery is dropped)",
    }


def _verify(raw: str, signature: str | None, timestamp: str | None, public_key: str, now: float) -> None:
    """Telnyx's check: Ed25519 over ``timestamp|raw body``, a timestamp within 300 s of now."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not (public_key or "").strip():
        raise TelnyxWebhookError(
            "public_key is not set: copy your Telnyx public key (portal.telnyx.com > Keys & Credentials > "
            "Public Key) into the flow's public_key setting, or set verify_signature to false (anyone who "
            "knows the webhook URL could then start streams).",
            "public_key",
        )
    if not signature or not timestamp:
        missing = "telnyx-signature-ed25519" if not signature else "telnyx-timestamp"
        raise TelnyxWebhookError(
            f"the event is unsigned: its {missing} header did not reach the flow. Telnyx always sends it: add "
            f"include_header=telnyx-signature-ed25519,telnyx-timestamp to the webhook URL, or this event did "
            "not come from Telnyx.",
            "signature",
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise TelnyxWebhookError(
            "public_key is not a Telnyx public key (base64 of 32 bytes; not shown): copy it again from "
            "portal.telnyx.com > Keys & Credentials > Public Key.",
            "public_key",
        ) from None
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        raise TelnyxWebhookError(
            "the telnyx-timestamp header is not a number of seconds: this event did not come from Telnyx.",
            "timestamp",
        ) from None
    age = now - sent_at
    if abs(age) > TOLERANCE_S:
        when = f"{int(age)} s old" if age > 0 else f"{int(-age)} s in the future"
        raise TelnyxWebhookError(
            f"the event is {when}, beyond the {TOLERANCE_S} s Telnyx's SDK allows: a replayed or delayed "
            "event is refused (check this worker's clock if every event is refused).",
            "timestamp",
        )
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), f"{timestamp}|{raw}".encode())
    except (binascii.Error, ValueError, InvalidSignature):
        raise TelnyxWebhookError(
            "the signature does not match (not shown): the event was forged or altered on the way, or "
            "public_key is another account's. Nothing was sent to Telnyx.",
            "signature",
        ) from None


def _envelope(raw: str) -> dict[str, Any]:
    """Telnyx's envelope: ``{"data": {"event_type", "id", "payload": {...}}}``."""
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):
        raise TelnyxWebhookError(
            f"the webhook body is not JSON (it starts {raw[:40]!r}): not a Telnyx event.", "envelope"
        ) from None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict):
        raise TelnyxWebhookError("the webhook body has no data object: not a Telnyx event envelope.", "envelope")
    for key, kind in (("event_type", str), ("id", str), ("payload", dict)):
        if not isinstance(data.get(key), kind) or data.get(key) == "":
            raise TelnyxWebhookError(
                f"data.{key} is missing from the webhook body: not a Telnyx event envelope.", "envelope"
            )
    return event


def _why_not(event_type: str, payload: dict[str, Any]) -> str:
    if event_type == "streaming.failed":
        reason = payload.get("failure_reason") or "not given"
        return (
            f"streaming.failed: the stream did not start (failure_reason: {reason}); check that stream_url "
            "is reachable from the internet and accepts the WebSocket handshake."
        )
    if event_type.startswith("streaming."):
        return f"{event_type}: Telnyx reports on a stream; nothing to start."
    return f"{event_type}: this flow starts a stream on call.answered only; nothing to do."
