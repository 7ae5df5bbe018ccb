# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "cryptography>=42,<51",
#   "requests>=2.32.4,<3",
#   "urllib3>=2.6.0,<3",
#   "jsonschema>=4.18,<5",
# ]
# ///
"""The flow "answer and stream every call": the one step (one job) an event that may need a command runs.

Telnyx POSTs every event of a call to the same URL. The flow's branch predicate lets through only an
incoming ``call.initiated``, a ``call.answered`` whose stream is not on yet and ``streaming.failed``;
this step then verifies the event's Ed25519 signature over ``telnyx-timestamp|raw body`` with your
account's public key (refusing forged, altered, unsigned and replayed events), reads Telnyx's
envelope, and acts (it decides alone: run without the predicate, it does the same):

- ``call.initiated``, direction ``incoming``: the call is parked, ringing, until someone answers it.
  The step answers it (Telnyx's ``answer``), and when every stream setting is one ``answer`` takes, the
  stream starts WITH the answer: no second command, no second webhook round trip. ``client_state``
  then marks the call, so the ``call.answered`` that follows starts nothing more.
- ``call.answered`` without that mark (an outgoing leg the callee picked up, or a call answered
  without the stream fields): the step starts the stream (``streaming_start``).
- anything else: nothing to do (``streaming.failed`` says why the stream failed).

The stream suits a voice bot unless ``voice_bot`` is false (VOICE_BOT, RECORDER); ``stream_options``
override it field by field. Settings are checked first, by name: a setting Windmill hands over as
text (a ``$var:``) is read as a boolean when it says true or false, and refused otherwise.
Each command carries the event's ``data.id`` as ``command_id``: Telnyx ignores a repeat within 60 s,
so an event delivered twice is one answer and one stream. Both commands go through the deployed
script f/telnyx/streaming_start (its checks, its deadline, its retries with one command_id, its errors;
the API key is never shown). Nothing here prints, returns or raises the public key or the signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# The deployed script (script.py), fetched from the workspace when the job imports it (Windmill's loader)
from f.telnyx.streaming_start import (  # type: ignore[import-not-found]
    ANSWER_FIELDS,
    TelnyxAPIError,
    answer,
    check_body,
    telnyx,
)
from f.telnyx.streaming_start import main as streaming_start

TOLERANCE_S = 300  # as Telnyx's official SDK: older (or further in the future) is a replay
URL_OPTIONS = "raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp"
# client_state of a call answered with its stream (base64, as Telnyx requires): its call.answered is done
STREAMING_MARK = base64.b64encode(b'{"stream":"started with the answer"}').decode()
CALL_ENDED = "90018"  # the caller hung up before the command arrived: nothing left to do
PLACEHOLDER_URL = "wss://your-server.example.com/media"  # flow.yaml's shipped stream_url: never a server of yours
# The stream a voice bot needs: the caller only (with both_tracks, a bot such as pipecat's takes the
# call's outbound audio, its own voice included, as the caller speaking), and a way to speak back
# (Telnyx plays raw audio from the server only with rtp; PCMU is what pipecat sends by default, and
# a codec other than what the server sends plays as noise). stream_codec PCMU too: a bot that answers
# in the codec it receives (the example server does) would otherwise get a PCMA caller's PCMA and send
# it back, played as PCMU: noise. Telnyx transcodes between PCMU and PCMA (its stream_codec docs).
# All four are fields answer takes.
VOICE_BOT = {
    "stream_track": "inbound_track",
    "stream_codec": "PCMU",
    "stream_bidirectional_mode": "rtp",
    "stream_bidirectional_codec": "PCMU",
}
# A recorder or transcriber hears both sides and never speaks: no bidirectional fields.
RECORDER = {"stream_track": "both_tracks"}


class TelnyxWebhookError(ValueError):
    """The event is refused before anything is sent to Telnyx; ``check`` names the check that failed."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


def main(
    auth: telnyx,
    raw_string: str | None = None,
    telnyx_signature_ed25519: str | None = None,
    telnyx_timestamp: str | None = None,
    public_key: str = "",
    verify_signature: bool = True,
    stream_url: str = "",
    voice_bot: bool = True,
    stream_options: dict | None = None,
    answer_incoming: bool = True,
    stream_outgoing: bool = True,
) -> dict:
    """Return ``{"action", "event_type", "event_id", "call_control_id", "why", "telnyx"}``; ``action``
    is ``answered_with_stream``, ``answered``, ``stream_started`` or ``none``."""
    verify_signature = _flag("verify_signature", verify_signature)
    answer_incoming = _flag("answer_incoming", answer_incoming)
    stream_outgoing = _flag("stream_outgoing", stream_outgoing)
    options = _stream_options(stream_options)
    stream_settings = {**(VOICE_BOT if _flag("voice_bot", voice_bot) else RECORDER), **options}
    if stream_settings.get("stream_bidirectional_mode") in (None, "") and "stream_bidirectional_codec" not in options:
        stream_settings.pop("stream_bidirectional_codec", None)  # no talk-back: no codec of ours either
    if public_key is not None and not isinstance(public_key, str):
        raise TelnyxWebhookError(
            f"public_key must be text, the key itself (base64 of 32 bytes), got {_kind(public_key)}: copy it "
            "from portal.telnyx.com > Keys & Credentials > Public Key into the flow's public_key setting.",
            "public_key",
        )
    if raw_string is None or raw_string == "" or not isinstance(raw_string, str):
        raise TelnyxWebhookError(
            "raw_string is missing: the webhook URL Telnyx posts to must end with "
            f"?token=...&{URL_OPTIONS} (raw=true hands this step the exact body Telnyx signed).",
            "raw_body",
        )
    if verify_signature:
        _verify(raw_string, telnyx_signature_ed25519, telnyx_timestamp, public_key or "", time.time())
    data = _envelope(raw_string)["data"]
    event_type, event_id, payload = data["event_type"], data["id"], data["payload"]
    seen = {"event_type": event_type, "event_id": event_id}
    call_control_id = payload.get("call_control_id")
    direction = payload.get("direction")
    if event_type not in ("call.initiated", "call.answered"):
        return {**seen, "action": "none", "why": _why_not(event_type, payload)}
    if not isinstance(call_control_id, str) or not call_control_id.strip():
        raise TelnyxWebhookError(
            f"data.payload.call_control_id is missing from this {event_type} event: the call cannot be controlled.",
            "envelope",
        )
    seen["call_control_id"] = call_control_id
    url = stream_url or stream_settings.get("stream_url")
    if isinstance(url, str) and url.strip() == PLACEHOLDER_URL:
        raise TelnyxWebhookError(
            f"stream_url is still the shipped placeholder: set it to your WebSocket server (the flow's "
            f"stream_url setting, now {PLACEHOLDER_URL}). Nothing was sent to Telnyx.",
            "settings",
        )
    stream = check_body({**stream_settings, "stream_url": url})
    if event_type == "call.initiated":
        if direction != "incoming":
            why = f"call.initiated ({direction}): the callee answers; the stream starts on call.answered."
            return {**seen, "action": "none", "why": why}
        if not answer_incoming:
            return {**seen, "action": "none", "why": "call.initiated (incoming): answer_incoming is off."}
        if set(stream) <= set(ANSWER_FIELDS):  # the stream starts with the answer: the shortest silence
            body, action = {**stream, "client_state": STREAMING_MARK, "command_id": event_id}, "answered_with_stream"
            why = "incoming call answered with its stream (one command; call.answered will start nothing more)"
        else:
            body, action = {"command_id": event_id}, "answered"
            extra = ", ".join(sorted(set(stream) - set(ANSWER_FIELDS)))
            why = f"incoming call answered; the stream starts on call.answered ({extra}: not taken by answer)"
        return _send(seen, action, why, answer, auth, call_control_id, body)
    if payload.get("client_state") == STREAMING_MARK:
        return {**seen, "action": "none", "why": "call.answered: the stream started with the answer."}
    if direction == "outgoing" and not stream_outgoing:
        return {**seen, "action": "none", "why": "call.answered (outgoing): stream_outgoing is off."}
    why = "call.answered: starting the stream (command_id = the event's data.id, so a redelivery is dropped)"
    return _send(
        seen, "stream_started", why, streaming_start, auth, call_control_id, {**stream, "command_id": event_id}
    )


def _kind(value: Any) -> str:
    """What a setting holds, in words, never its value (it could be a secret put in the wrong place)."""
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _flag(name: str, value: Any) -> bool:
    """A boolean setting. Windmill hands a ``$var:`` setting over as text: "true" and "false" (any case)
    are read as booleans; any other text, or a number, is refused naming the setting."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    shown = f"the text {value[:20]!r}" if isinstance(value, str) and len(value) <= 20 else _kind(value)
    raise TelnyxWebhookError(
        f"the setting {name} must be true or false, got {shown}: set it to true or false in the flow "
        "(a variable holding the text true or false works too). Nothing was sent to Telnyx.",
        "settings",
    )


def _stream_options(value: Any) -> dict[str, Any]:
    """The stream_options setting: an object of stream fields; null or blank means none."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    raise TelnyxWebhookError(
        f"the setting stream_options must be an object of stream fields, got {_kind(value)}: write it as an "
        'object in the flow, e.g. {"stream_codec": "PCMU"} (a variable is always text: it cannot hold it). '
        "Nothing was sent to Telnyx.",
        "settings",
    )


def _send(seen: dict, action: str, why: str, command: Any, auth: Any, call_control_id: str, body: dict) -> dict:
    try:
        answered = command(auth, call_control_id, body)
    except TelnyxAPIError as error:
        if CALL_ENDED not in error.codes:
            raise
        return {**seen, "action": "none", "why": "the call ended before the command reached it: nothing to do."}
    return {**seen, "action": action, "why": why, "telnyx": answered}


def _verify(raw: str, signature: Any, timestamp: Any, public_key: str, now: float) -> None:
    """Telnyx's check: Ed25519 over ``timestamp|raw body``, a timestamp within 300 s of now."""
    if not (public_key or "").strip():
        raise TelnyxWebhookError(
            "public_key is not set: copy your Telnyx public key (portal.telnyx.com > Keys & Credentials > "
            "Public Key) into the flow's public_key setting, or set verify_signature to false (anyone who "
            "knows the webhook URL could then answer and stream your calls).",
            "public_key",
        )
    for header, value in (("telnyx-signature-ed25519", signature), ("telnyx-timestamp", timestamp)):
        if value is not None and not isinstance(value, str):  # Windmill fills a missing header from the body
            raise TelnyxWebhookError(
                f"the event is unsigned: its {header} input is {_kind(value)}, not the header's text (a body "
                f"key of that name fills it when the header did not reach the flow). Telnyx always sends it: "
                f"add include_header=telnyx-signature-ed25519,telnyx-timestamp to the webhook URL, or this "
                "event did not come from Telnyx.",
                "signature",
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
            f"streaming.failed: the stream did not start (failure_reason: {reason}); check the host, port and "
            "path of stream_url, and that the server there accepts the WebSocket handshake (Telnyx connects "
            "from the internet)."
        )
    if event_type.startswith("streaming."):
        return f"{event_type}: Telnyx reports on a stream; nothing to start."
    return f"{event_type}: this flow answers on call.initiated and streams on call.answered; nothing to do."
