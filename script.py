# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "requests>=2.32.4,<3",
#   "urllib3>=2.6.0,<3",
#   "jsonschema>=4.18,<5",
# ]
# ///
"""Telnyx — Streaming start: fork a live call's audio to your WebSocket server.

A Windmill script (also a plain Python function; its command line is script_cli.py in a clone). It POSTs
``{base}/calls/{call_control_id}/actions/streaming_start`` with your body, as the original hub script does,
plus what a live call needs: the body checked before anything is sent, retries that can never start a second
stream (one ``command_id``), a deadline for the whole command, errors that say what to fix, and the API key
never printed, logged, raised or returned. ``answer`` sends Telnyx's answer command the same way (the shipped
webhook flow imports it). Read top to bottom: ``main`` and ``answer``, the body's fields (the ONE place they
are defined: the validator and ``script.schema.json`` are built from them), then what they call.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import functools
import http.client
import ipaddress
import itertools
import json
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from contextvars import ContextVar, copy_context
from typing import Any, Dict, List, Mapping, TypedDict
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util import Retry
from urllib3.util.response import assert_header_parsing

__version__ = "1.2.0"
__all__ = [  # what a Windmill job, a flow step importing f/telnyx/streaming_start, or script_cli.py uses
    *("ANSWER_FIELDS", "BODY_FIELDS", "BODY_SCHEMA", "HINTS", "StreamingStartBody", "StreamingStartResult"),
    *("TelnyxAPIError", "TelnyxConnectionError", "TelnyxError", "TelnyxInputError", "answer"),
    *("check_answer_body", "check_body", "check_key", "main", "telnyx"),
]


class telnyx(TypedDict):
    """The `telnyx` resource: an API key from portal.telnyx.com > Account settings > Keys."""

    apiKey: str


def main(
    auth: telnyx,
    call_control_id: str,
    body: "StreamingStartBody | None" = None,
    timeout_s: float = 10.0,
    deadline_s: float = 20.0,
    max_retries: int = 2,
) -> Any:
    """Start streaming a live call's audio to a WebSocket server.

    ``auth`` is the `telnyx` resource (``{"apiKey": "KEY..."}``), ``call_control_id`` the call's
    ``data.payload.call_control_id``, ``body`` any of BODY_FIELDS (``None``, ``""``, ``[]``, ``{}``: not set, not
    sent). ``timeout_s``: one attempt's wait for an answer; ``deadline_s``: the whole command, retries included;
    ``max_retries``: 0 turns them off. Returns Telnyx's JSON (``{"data": {"result": "ok"}}``, a dict whose
    ``command_id`` attribute was sent; ``None`` for a 2xx with no body, as the original). Raises TelnyxInputError
    (a ValueError: nothing was sent), TelnyxAPIError (Telnyx answered non-2xx: ``str()`` starts with ``"<status>
    <text>"``) or TelnyxConnectionError (no answer: connection failed, timeout, deadline).
    """
    return _command("streaming_start", auth, call_control_id, body, timeout_s, deadline_s, max_retries)


def answer(
    auth: telnyx,
    call_control_id: str,
    body: Mapping[str, Any] | None = None,
    timeout_s: float = 10.0,
    deadline_s: float = 20.0,
    max_retries: int = 2,
) -> Any:
    """Answer an incoming call (Telnyx's ``answer`` command) with main's checks, deadline, retries and errors.
    ``body`` holds any of ANSWER_FIELDS; with ``stream_url`` the stream starts with the answer. The shipped
    flow's step imports it (``from f.telnyx.streaming_start import answer``)."""
    return _command("answer", auth, call_control_id, body, timeout_s, deadline_s, max_retries)


def _command(action: str, auth: Any, call_control_id: Any, body: Any, timeout_s: Any, deadline_s: Any, retries: Any):
    """POST ``/calls/{call_control_id}/actions/{action}``: every check first, then the request."""
    started = time.monotonic()
    api_key = _check_auth(auth)
    _remember_key(api_key)
    try:
        path_id = _check_call_control_id(call_control_id, api_key)
        payload = check_body(body) if action == "streaming_start" else check_answer_body(body)
        _check_limits(timeout_s, deadline_s, retries)
        url = f"{_base_url()}/calls/{path_id}/actions/{action}"
        if retries > 0:  # a retried POST is only safe with one command_id: Telnyx drops repeats
            payload.setdefault("command_id", str(uuid.uuid4()))
        return _post_with_retries(url, payload, api_key, timeout_s, started + deadline_s, retries)
    except TelnyxError as error:
        error.mask(api_key)  # the one place every error passes: whatever a server echoed, the key goes
        raise


# The body Telnyx accepts: a JSON object with any of BODY_FIELDS. A string annotation keeps Windmill's parser
# from replacing the stored form (it reports it as "unknown").
StreamingStartBody = Mapping[str, Any]
CODECS = ["PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"]

# == The body's fields: the one place they are defined. Each value is the field's JSON Schema, with the form
# hints Windmill honours (description, placeholder, password, nullable); the validator and
# script.schema.json are derived from it, in this order. `nullable: true` makes Windmill's run form send null
# (not "") for a text or list field never touched, and skips its own pattern check; null, "" and [] all
# mean "not set" here anyway (older forms and flow steps send blanks).
BODY_FIELDS: Dict[str, Dict[str, Any]] = {
    "stream_url": {
        "type": "string",
        "nullable": True,
        "description": "WebSocket URL Telnyx connects to and streams the call's audio to, e.g. "
        "wss://your-server.example.com/media. Must start with wss:// (or ws://). Required unless enable_dialogflow "
        "is true (without either, nothing would stream). Telnyx is the WebSocket client: your server must be "
        "reachable from the internet.",
        "pattern": r"^[wW][sS][sS]?://[^\s/?#]+([/?#]\S*)?$",
        "placeholder": "wss://your-server.example.com/media",
        "customErrorMessage": "must be a ws:// or wss:// URL with a host",
    },
    "stream_track": {
        "type": "string",
        "enum": ["inbound_track", "outbound_track", "both_tracks"],
        "description": "Which audio to stream: the caller (inbound_track, Telnyx's default), what the call plays "
        "(outbound_track), or both, as separate tracks (both_tracks).",
        "placeholder": "inbound_track",
    },
    "stream_codec": {
        "type": "string",
        "enum": [*CODECS, "default"],
        "description": "Codec of the audio sent to your server. 'default' (or leaving it empty) keeps the call's "
        "codec; Telnyx's docs say it transcodes only between PCMU and PCMA.",
        "placeholder": "default",
    },
    "stream_bidirectional_mode": {
        "type": "string",
        "enum": ["mp3", "rtp"],
        "description": "Lets your server send audio back into the call: 'mp3' (base64 MP3 files; Telnyx's "
        "default) or 'rtp' (raw audio frames). Set 'rtp' to use stream_bidirectional_codec and "
        "stream_bidirectional_sampling_rate.",
    },
    "stream_bidirectional_codec": {
        "type": "string",
        "enum": CODECS,
        "description": "Codec of the audio your server sends back (case sensitive). Telnyx uses it only with "
        "stream_bidirectional_mode 'rtp', so the script refuses it without 'rtp' (the choice would be silently "
        "ignored). Telnyx's default: PCMU.",
        "placeholder": "PCMU",
    },
    "stream_bidirectional_sampling_rate": {
        "type": "integer",
        "enum": [8000, 16000, 22050, 24000, 48000],
        "description": "Sample rate in Hz of the audio your server sends back: 8000, 16000, 22050, 24000 or 48000 "
        "(Telnyx's default: 8000). Used with stream_bidirectional_mode 'rtp'; the script refuses it without 'rtp'.",
        "placeholder": "8000",
    },
    "stream_bidirectional_target_legs": {
        "type": "string",
        "enum": ["both", "self", "opposite"],
        "description": "Which call legs hear the audio your server sends back (Telnyx's default: opposite).",
    },
    "stream_auth_token": {
        "type": "string",
        "nullable": True,
        "maxLength": 4000,
        "password": True,
        "description": "A secret Telnyx hands to your WebSocket server when it connects (header "
        "x-telnyx-streaming-auth-token and the 'connected' frame), so the server can reject strangers. At most "
        "4000 characters.",
    },
    "custom_parameters": {
        "type": "array",
        "nullable": True,
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
            "required": ["name", "value"],
            "additionalProperties": False,
        },
        "description": "Name/value pairs (strings) delivered to your server in the 'start' frame, e.g. "
        '[{"name": "tenant", "value": "acme"}]. An item left with both name and value empty is ignored; an item '
        "with only one of them empty is refused.",
    },
    "enable_dialogflow": {
        "type": "boolean",
        "description": "Stream to Dialogflow (configured on your Telnyx connection). Default false.",
    },
    "dialogflow_config": {
        "type": "object",
        "properties": {"analyze_sentiment": {"type": "boolean"}, "partial_automated_agent_reply": {"type": "boolean"}},
        "additionalProperties": False,
        "description": "Dialogflow options: analyze_sentiment, partial_automated_agent_reply (booleans).",
    },
    "client_state": {
        "type": "string",
        "nullable": True,
        "description": "Base64 text echoed back in every later webhook of this call (e.g. base64 of a JSON with "
        "your own ids). Telnyx's spec requires Base-64, so other text is refused: encode it first.",
        "placeholder": "eyJ0ZW5hbnQiOiAiYWNtZSJ9",
    },
    "command_id": {
        "type": "string",
        "nullable": True,
        "description": "Idempotency key: Telnyx ignores a second command with the same command_id on the same "
        "call. Left empty (and max_retries above 0), the script makes one (a UUID) and sends it on every retry. "
        "Pass the webhook's event id to stay exactly-once across flow retries too.",
    },
}
BODY_SCHEMA = {  # the body as one JSON Schema: the validator's, and the form's `body` (script_cli.py)
    "type": "object",
    "description": "What to stream and where. Unset fields (empty, null) are not sent.",
    "properties": BODY_FIELDS,
    "order": list(BODY_FIELDS),
    "additionalProperties": False,
}
# The fields of Telnyx's `answer` this script sends: the stream fields answer takes (its spec has no
# stream_auth_token, custom_parameters, stream_bidirectional_sampling_rate nor Dialogflow fields: a stream that
# needs them starts after the answer), the call's client_state and command_id.
ANSWER_FIELDS = (
    *("stream_url", "stream_track", "stream_codec", "stream_bidirectional_mode", "stream_bidirectional_codec"),
    *("stream_bidirectional_target_legs", "client_state", "command_id"),
)

DEFAULT_BASE_URL = "https://api.telnyx.com/v2"
MAX_RESPONSE_BYTES = 1 << 20  # answers larger than this are refused, not read into memory
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CONNECT_TIMEOUT_S = 3.05
MAX_DEPTH = 8  # no streaming_start field nests deeper than 3; deeper input is refused, not recursed into
MAX_KEYS = 64  # keys read from one object at most (the body has 13 fields): a Mapping that never ends is refused
MAX_ITEMS = 1000  # items of one list at most
MIN_KEY_LENGTH = 16  # a shorter "key" cannot be masked without corrupting ordinary text (README)


# == Errors: one flat tree. Bad input is also a ValueError. main() masks the key in every one.
class TelnyxError(Exception):
    """Base of every error this script raises."""

    def mask(self, api_key: str) -> None:
        """Replace the API key (any case, also JSON-escaped) in the message and every attribute."""
        self.args = tuple(_masked(arg, api_key) for arg in self.args)
        for name, value in vars(self).items():
            setattr(self, name, _masked(value, api_key))


class TelnyxInputError(TelnyxError, ValueError):
    """The input is wrong; nothing was sent. ``field`` names it (e.g. ``body.stream_track``)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class TelnyxAPIError(TelnyxError):
    """Telnyx answered non-2xx. ``str()`` starts with ``"<status> <response text>"``."""

    def __init__(
        self, message: str, status=0, response_text="", errors=None, request_id=None, command_id=None, attempts=1
    ):
        super().__init__(message)
        self.status, self.response_text, self.errors = status, response_text, errors or []
        self.codes = [str(e.get("code")) for e in self.errors if isinstance(e, dict) and "code" in e]
        self.request_id, self.command_id, self.attempts = request_id, command_id, attempts


class TelnyxConnectionError(TelnyxError):
    """No answer from Telnyx: connection refused or reset, timeout, or the deadline passed."""

    def __init__(self, message: str, command_id: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.command_id, self.attempts = command_id, attempts


class StreamingStartResult(Dict[str, Any]):
    """Telnyx's JSON answer, unchanged, plus the ``command_id`` that was sent (an attribute)."""

    command_id: str | None = None
    attempts: int = 1


# What to do about the errors users hit most, by Telnyx error code. (10011 is not here: on a 422
# it means an invalid parameter value; a rate limit is told by the 429 status.)
HINTS = {
    "90018": "The call has already ended (the caller hung up): nothing to stream. Start the "
    "stream as soon as call.answered arrives; do not retry.",
    "90015": "Telnyx does not know this call_control_id: pass data.payload.call_control_id of "
    "the call's webhook unchanged, with an API key of the same Telnyx account.",
    "90034": "The call is not answered yet: start the stream after call.answered (not "
    "call.initiated), or pass stream_url to the answer command instead.",
    # 90045: Telnyx's error list says "Media Streaming is used: this command can't be issued when media
    # streaming is used"; that a second start on a streaming call answers it is likely, NOT verified.
    "90045": "A stream is already running on this call (Telnyx: media streaming is used), so a second "
    "streaming_start was refused. Nothing changed: the running stream goes on. To start it again with "
    "other settings, stop it first (streaming_stop), then start; to make a repeat harmless, pass the first "
    "start's command_id (e.g. the webhook's data.id), which Telnyx drops as a duplicate.",
    "10009": "Authentication failed: the API key in the telnyx resource is wrong or revoked. "
    "Create a key at portal.telnyx.com > Account settings > Keys and update the resource.",
}
STATUS_HINTS = {
    401: HINTS["10009"],
    403: "The API key is not allowed to control this call: use a key of the account that owns it.",
    404: "No such call or endpoint: check call_control_id and TELNYX_BASE_URL.",
    429: "Rate limited by Telnyx: slow down, or raise max_retries / deadline_s.",
}


# == Checks before sending. Each error names the field, what is wrong and the fix.
def check_body(body: Mapping[str, Any] | None) -> Dict[str, Any]:
    """Return the streaming_start body to send, checked against the form. ``None`` is dropped at any depth
    (JSON.stringify drops undefined; a Python caller's "unset" is None); a top-level ``""``, ``[]`` or ``{}`` is
    what Windmill's run form sends for a field never touched, so it is "not set" too. Tuples become lists."""
    return _checked(body, BODY_FIELDS, "streaming_start")


def check_answer_body(body: Mapping[str, Any] | None) -> Dict[str, Any]:
    """Return the answer body to send: ANSWER_FIELDS only, checked as in check_body; without a stream_url (and
    any stream field) the call is answered and nothing streams yet."""
    return _checked(body, ANSWER_FIELDS, "answer")


def _checked(body: Mapping[str, Any] | None, fields: Any, command: str) -> Dict[str, Any]:
    if not isinstance(body, (Mapping, type(None))):
        raise TelnyxInputError(
            f"body must be an object (a JSON dict of streaming_start fields), got {type(body).__name__}. Example: "
            '{"stream_url": "wss://example.com/media"}.',
            "body",
        )
    payload = _without_blanks(_plain(body or {}, "body", 0))
    for key in payload:
        if key not in fields:
            import difflib  # only on this error path: keeps it out of every cold start

            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6) if len(key) <= 64 else []
            hint = f"did you mean {close[0]!r}?" if close else "check the spelling."
            if command == "answer" and key in BODY_FIELDS:
                hint = "answer does not take it: start the stream with streaming_start after call.answered."
            message = f"body has an unknown field {_show(key)}: {hint} Fields {command} accepts: {', '.join(fields)}."
            raise TelnyxInputError(message, f"body.{key}")
    _check_parameters(payload.get("custom_parameters"))  # before the schema, whose message would be vaguer
    # keys and lists are bounded above, so the errors are too: the first wrong field by name is named
    errors = sorted(_validator().iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        raise TelnyxInputError(*_explain(errors[0]))
    _check_rules(payload, needs_stream=command == "streaming_start")
    for key, spec in BODY_FIELDS.items():  # 16000.0 passes as an integer: send it as JSON.stringify does
        if spec["type"] == "integer" and isinstance(payload.get(key), float):
            payload[key] = int(payload[key])
    return payload


def _without_blanks(body: Dict[str, Any]) -> Dict[str, Any]:
    """The body without what the run form sends for a field left empty: ``""``, ``[]``, ``{}``, and a
    custom_parameters item whose name and value are both empty (a blank "+ Add item")."""
    params = body.get("custom_parameters")
    if isinstance(params, list):
        body["custom_parameters"] = [p for p in params if not (isinstance(p, dict) and _blanks(p) == 2)]
    return {k: v for k, v in body.items() if v not in ("", [], {})}


def _blanks(item: Dict[str, Any]) -> int:
    return sum(item.get(key) in (None, "") for key in ("name", "value"))  # a custom parameter's empty name or value


def _plain(value: Any, field: str, depth: int) -> Any:
    """A copy of ``value`` in plain JSON types with None dropped, or a TelnyxInputError naming the field: bounded
    depth (no recursion error, no cycle), at most MAX_KEYS keys and MAX_ITEMS items, string keys, JSON's text."""
    refused = lambda what: TelnyxInputError(f"{field} {what}", field)  # noqa: E731
    if depth > MAX_DEPTH:
        raise refused(f"is nested deeper than {MAX_DEPTH} levels: no streaming_start field is.")
    if isinstance(value, str):
        value = str.__str__(value)  # a plain str: a subclass's methods never run
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise refused("contains a lone surrogate character, which JSON cannot carry: remove it.") from None
        return value
    if isinstance(value, (bool, float)) or value is None:
        return value
    if isinstance(value, int):
        if not -(2**53) <= value <= 2**53:
            raise refused(f"is a {value.bit_length()}-bit integer: no field takes one that large.")
        return value
    if isinstance(value, Mapping):
        try:
            items = list(itertools.islice(value.items(), MAX_KEYS + 1))  # read no further than that
        except Exception:  # a hostile Mapping (unhashable keys, a raising __iter__): refused, never a crash
            raise refused("cannot be read as an object: pass a plain dict.") from None
        if len(items) > MAX_KEYS:
            raise refused(f"has more than {MAX_KEYS} keys: no streaming_start object has that many.")
        if any(not isinstance(key, str) for key, _ in items):
            kind = type(next(key for key, _ in items if not isinstance(key, str))).__name__
            raise refused(f"has a key of type {kind}: keys must be strings.")
        plain = ((str.__str__(key), item) for key, item in items if item is not None)
        return {key: _plain(item, f"{field}.{_show_text(key, 80)}", depth + 1) for key, item in plain}
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS:
            raise refused(f"has {len(value)} items: at most {MAX_ITEMS}.")
        return [_plain(item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value) if item is not None]
    raise refused(
        f"is a {type(value).__name__}, which JSON cannot carry: use a string, number, boolean, list or object."
    )


def _check_rules(payload: Dict[str, Any], needs_stream: bool) -> None:
    """The protective rules the schema cannot say well (each is in docs/, with its reason)."""
    url, field = payload.get("stream_url"), "body.stream_url"
    if needs_stream and url is None and payload.get("enable_dialogflow") is not True:
        raise TelnyxInputError(
            "body.stream_url is missing: with no stream_url and enable_dialogflow not true, Telnyx would accept the "
            "command and stream nothing, and the caller would hear silence. Set body.stream_url to your WebSocket "
            "server, e.g. wss://your-server.example.com/media (or set body.enable_dialogflow to true to stream to "
            "Dialogflow).",
            field,
        )
    streamless = [key for key in payload if key.startswith("stream_") and key != "stream_url"]
    if not needs_stream and url is None and streamless:  # answer: its stream fields need a stream_url
        raise TelnyxInputError(
            f"body.stream_url is missing, but {', '.join(streamless)} {'is' if len(streamless) == 1 else 'are'} "
            "set: answer starts a stream only with a stream_url, so Telnyx would answer the call and stream nothing. "
            "Set body.stream_url to your WebSocket server, e.g. wss://your-server.example.com/media, or remove the "
            "stream fields to answer without a stream.",
            field,
        )
    if url is not None and _has_credentials(url):
        raise TelnyxInputError(
            "body.stream_url contains a user or password (the URL is not shown, to keep it out of logs): Telnyx would "
            "repeat it in every streaming.failed webhook. Remove it from the URL and pass the secret as "
            "body.stream_auth_token, which your server receives when Telnyx connects.",
            field,
        )
    try:
        parts = urlsplit(url or "ws://h")
        websocket = parts.scheme in ("ws", "wss") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # .port refuses a bad port
        websocket = False
    if url is not None and not (websocket and url.isprintable()):
        raise TelnyxInputError(
            f"body.stream_url must be a ws:// or wss:// URL with a host and no control characters, got {_show(url)}. "
            "Example: wss://your-server.example.com/media.",
            field,
        )
    command_id = payload.get("command_id")
    if command_id is not None and not command_id.isprintable():
        raise TelnyxInputError(
            f"body.command_id contains control characters or line breaks, got {_show(command_id)}: use plain text, "
            "e.g. the webhook's data.id.",
            "body.command_id",
        )
    state = payload.get("client_state") or ""
    try:
        base64.b64decode(state.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        example = f", e.g. {base64.b64encode(state.encode()).decode()!r}." if len(state) <= 100 else "."
        raise TelnyxInputError(
            "body.client_state must be base64, as Telnyx's spec requires (what Telnyx does with other text is not "
            f"verified, so it is refused here); encode it first{example} Decode it again from "
            "data.payload.client_state of later webhooks.",
            "body.client_state",
        ) from None
    for key in ("stream_bidirectional_codec", "stream_bidirectional_sampling_rate"):
        if key in payload and payload.get("stream_bidirectional_mode") != "rtp":
            raise TelnyxInputError(
                f"body.{key} is only used when stream_bidirectional_mode is 'rtp' (Telnyx would silently ignore it): "
                f"set stream_bidirectional_mode to 'rtp', or remove {key}.",
                f"body.{key}",
            )


def _check_parameters(params: Any) -> None:
    """A custom parameter with only one of name and value filled in is a half-done form item."""
    for index, item in enumerate(params if isinstance(params, list) else []):
        if isinstance(item, dict) and _blanks(item) == 1:
            empty = "name" if item.get("name") in (None, "") else "value"
            raise TelnyxInputError(
                f"body.custom_parameters[{index}] has an empty {empty}: fill in both name and value, or "
                "remove the item (an item with both empty is ignored).",
                f"body.custom_parameters[{index}]",
            )


def _has_credentials(url: str) -> bool:
    """True when the URL's authority holds a user or password (``user@``, ``:pw@``), however malformed
    the rest is: such a URL is never echoed in a message."""
    authority = url.partition("//")[2] if "//" in url else url
    return "@" in re.split(r"[/?#\\]", authority, maxsplit=1)[0]


RESOURCE_FIX = "Pick a telnyx resource whose apiKey is your Telnyx API key (it starts with KEY)."


def _check_auth(auth: Any) -> str:
    """The API key from the telnyx resource, stripped of the whitespace a paste leaves."""
    if not isinstance(auth, Mapping):
        raise TelnyxInputError(f"auth must be a telnyx resource, got {type(auth).__name__}. {RESOURCE_FIX}", "auth")
    try:
        key = auth.get("apiKey")
    except Exception:  # a hostile Mapping: refused, never a crash
        raise TelnyxInputError(f"auth cannot be read as an object: pass a plain dict. {RESOURCE_FIX}", "auth") from None
    return check_key(key, "auth.apiKey", RESOURCE_FIX)


def check_key(key: Any, name: str, fix: str) -> str:
    """The key, or a TelnyxInputError naming where it came from (``name``) and how to fix it."""
    if not isinstance(key, str) or not str.__str__(key).strip():
        raise TelnyxInputError(f"{name} is missing or empty. {fix}", name)
    key = str.__str__(key).strip()  # a plain str: a subclass's methods never run
    if not key.isascii() or not key.isprintable() or any(c in key for c in ' "\\'):
        what = "contains spaces, quotes, line breaks or non-ASCII characters (not shown). Copy the key again."
        raise TelnyxInputError(f"{name} {what} {fix}", name)
    if len(key) < MIN_KEY_LENGTH:
        what = f"is {len(key)} characters: a Telnyx API key is longer. Copy the whole key."
        raise TelnyxInputError(f"{name} {what} {fix}", name)
    return key


def _check_call_control_id(call_control_id: Any, api_key: str) -> str:
    """The id, percent-encoded as ONE path segment: it can never change the path or query."""
    if isinstance(call_control_id, str):
        # a plain str (a subclass's methods never run), without a pasted id's newline (as the original's URL parser)
        call_control_id = str.__str__(call_control_id).strip()
    what = ""
    if not isinstance(call_control_id, str) or not call_control_id:
        got = "an empty string" if call_control_id == "" else type(call_control_id).__name__
        what = f"must be a non-empty string, got {got}."
    elif call_control_id == api_key:
        what = "is your API key (not shown): the arguments look swapped. auth is the telnyx resource."
    elif api_key.lower() in call_control_id.lower():  # it would travel in the URL and urllib3's debug log
        what = "contains your API key (not shown): remove it."
    elif len(call_control_id) > 512:
        what = f"is {len(call_control_id)} characters, too long for an id."
    elif not call_control_id.isprintable() or " " in call_control_id:  # isprintable() refuses other whitespace
        what = f"contains spaces, line breaks or control characters: {_show(call_control_id)}."
    elif call_control_id in (".", ".."):
        what = f"{call_control_id!r} is not an id."
    if what:
        fix = "Pass data.payload.call_control_id of the call.answered webhook, e.g. v3:9X2vxPDF..."
        raise TelnyxInputError(f"call_control_id {what} {fix}", "call_control_id")
    return quote(call_control_id, safe=":")


def _check_limits(timeout_s: Any, deadline_s: Any, max_retries: Any) -> None:
    for name, value in (("timeout_s", timeout_s), ("deadline_s", deadline_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
            raise TelnyxInputError(
                f"{name} must be a number of seconds above 0 and at most 600, got {_show(value)}.", name
            )
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
        raise TelnyxInputError(
            f"max_retries must be a whole number from 0 to 10, got {_show(max_retries)}.", "max_retries"
        )


def _base_url() -> str:
    """TELNYX_BASE_URL (as in the official SDK) or api.telnyx.com; https, or http to loopback."""
    return _checked_base_url(os.environ.get("TELNYX_BASE_URL") or DEFAULT_BASE_URL)


@functools.lru_cache(maxsize=8)
def _checked_base_url(raw: str) -> str:
    try:
        parts = urlsplit(raw)
        host, _ = parts.hostname or "", parts.port
    except ValueError:
        parts, host = urlsplit(""), ""
    loopback = host == "localhost" or (_is_address(host) and ipaddress.ip_address(host).is_loopback)
    # no "?" or "#", even empty ("https://host/v2#" would send to another path), no user or password
    clean = raw.isprintable() and not any(c in raw for c in "?#") and not (parts.username or parts.password)
    if host and clean and (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        return raw.rstrip("/")
    raise TelnyxInputError(
        f"TELNYX_BASE_URL must be an https:// URL (http:// only to 127.0.0.1, ::1 or localhost), "
        f"with no user, query or fragment; got {_show(raw)}. Unset it to use {DEFAULT_BASE_URL}.",
        "TELNYX_BASE_URL",
    )


@functools.cache
def _validator() -> Any:
    """The body's validator, built once per process (jsonschema is imported on first use)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(BODY_SCHEMA)


def _explain(error: Any) -> tuple:
    """A jsonschema error as (message, field), without echoing secrets or huge values."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    field = "body" + path
    top = next((p for p in error.absolute_path if isinstance(p, str)), None)
    secret = top == "stream_auth_token" or (isinstance(error.instance, str) and _has_credentials(error.instance))
    got = "" if secret else f", got {_show(error.instance)}"
    kind, expected = error.validator, error.validator_value
    if kind == "type" and expected in ("integer", "number") and isinstance(error.instance, str):
        number = error.instance.strip()
        example = number if re.fullmatch(r"-?\d+(\.\d+)?", number) else "8000"
        fix = f"it must be a number, not text: write {example} without quotes"
        if "enum" in error.schema:
            fix += " (one of " + ", ".join(json.dumps(v) for v in error.schema["enum"]) + ")"
    elif kind == "enum" or (kind == "type" and "enum" in error.schema):
        fix = "use one of " + ", ".join(json.dumps(v) for v in error.schema["enum"])
    elif kind == "type":
        fix = f"use a JSON {expected}" + (" (true or false)" if expected == "boolean" else "")
    elif kind == "maxLength":
        fix = f"shorten it to at most {expected} characters (it has {len(error.instance)})"
    elif kind == "required":
        fix = f"every item needs {' and '.join(expected)} (strings)"
    elif kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        fix = f"remove {', '.join(map(repr, extra))}; allowed: {', '.join(error.schema['properties'])}"
        got = ""
    elif kind == "pattern":
        fix = error.schema.get("customErrorMessage", f"match {expected}")
    else:  # no other keyword is in the body's schema today; a safe wording if one is added
        fix = f"see the field's description ({kind})"
    return f"{field} is invalid{got}: {fix}.", field


def _show(value: Any, limit: int = 80) -> str:
    """A short repr for a message; never raises (a huge int or a hostile __repr__ is named by type),
    never shows what may be a user or password (``...//user@``, ``...:pw@``), however it is shaped."""
    if isinstance(value, str) and "@" in value and re.search(r"(//|:)[^@]*@", value):
        return "(not shown: it may hold a user or password)"
    try:
        text = repr(value)
    except Exception:
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 5] + "...'"


# == HTTP. requests' HTTPAdapter sends, in the caller's thread; _try_once says how the deadline bounds it. Each
# calling thread has its own pool, so a cut never reaches a connection another call uses. No Session: no
# cookies, no redirects, no ~/.netrc. The retry loop is written out; urllib3's Retry is the policy it asks.
#
# Beyond the documented surface of requests, urllib3 and http.client, this relies on the following (each
# checked by tests/test_public_ground.py, which fails naming the item when a release changes it):
#   1. PoolManager.pool_classes_by_scheme and a pool's ConnectionCls: _AttemptConnection in every pool.
#   2. http.client.HTTPConnection.sock, seen as it is set: the socket a deadline cuts.
#   3. urllib3's SSLTransport.socket: the socket under TLS inside TLS (an https proxy).
#   4. HTTPConnection.response_class, HTTPResponse.begin and .debuglevel: _Response, and no debug output.
#   5. requests.utils.get_environ_proxies and .default_user_agent, urllib3.util.response.assert_header_parsing.
#   6. How failures are told apart (_what_failed): the chain of causes under requests' and urllib3's wrappers,
#      NameResolutionError.conn.host, OpenSSL's reasons (_NOT_TLS), PySocks' errors by their module.
def _try_once(request: requests.PreparedRequest, timeout_s: float, deadline: float, proxies: Dict[str, str]) -> tuple:
    """One attempt: ``(_Answer, None)`` or ``(None, _Failure)``, by the deadline whatever the network does. It
    runs in this thread, bounded three ways. Each socket operation waits at most its timeout, never past the
    deadline (_send_and_read). A name lookup or a SOCKS handshake, which nothing can interrupt, runs in a thread
    this one waits for until the deadline at most (_AttemptConnection.connect). And the clock, a thread alive
    only while attempts run (_Clock), shuts the attempt's socket down when the deadline passes: no server, proxy or TLS
    handshake dripping its bytes holds this thread longer, a socket set later is cut as it is set, and what was
    read as the clock cut is never trusted (the socket's end can read as the answer's end). "Sent" is the
    attempt's evidence: only a failure, or a cut, while connecting proves the request never left."""
    attempt = _Attempt(deadline, socks=any(p.startswith("socks") for p in proxies.values()))
    _CLOCK.watch(attempt)
    token = _ATTEMPT.set(attempt)
    try:
        answer, failure = _send_and_read(request, timeout_s, deadline, proxies)
    except Exception as exc:  # whatever the server or the network did: classified, never a crash
        answer, failure = None, _classify(exc, attempt.sent())
    except _Interrupted as interrupted:
        raise interrupted.args[0] from None
    finally:
        _ATTEMPT.reset(token)
        _CLOCK.unwatch(attempt)
    if attempt.cut or (failure is not None and failure.kind == "timeout" and time.monotonic() >= deadline):
        return None, _Failure("timeout", "deadline_s passed before an answer came", attempt.sent())
    return answer, failure


class _DeadlinePassed(OSError):
    """The attempt's deadline has passed: nothing more is connected or written."""


class _Interrupted(BaseException):
    """The caller's own exception, raised as it waited for a lookup: passed through, then raised as it was."""


class _TooManyLookups(OSError):
    """_LOOKUPS_AT_MOST name lookups have not returned: this one is not even tried."""


class _Attempt:
    """One attempt: its deadline, its socket, how far the request got. The connection hooks report here (in
    the caller's thread, or a lookup's); the clock cuts it. One lock orders the two: nothing is cut after
    ``finish``, and after ``cut`` nothing is connected or written and a new socket is shut at once."""

    def __init__(self, deadline: float, socks: bool) -> None:
        self.deadline, self.socks = deadline, socks  # socks: through a SOCKS proxy (its handshake cannot be cut)
        self.cut = self._done = self.requested = False  # requested: request() began, a byte may have left
        self.connecting = ""  # "now", "done" or "failed" (the request never left); "": not in this attempt
        self._socket: Any = None  # the OS socket in use (under any TLS)
        self._lock = threading.Lock()

    def reached(self, connecting: str = "", requested: bool = False, sock: Any = None) -> None:
        with self._lock:
            if self.cut and connecting != "failed":
                _shut(sock)
                raise _DeadlinePassed
            self.connecting, self.requested = connecting or self.connecting, self.requested or requested
            self._socket = sock if sock is not None else self._socket

    def sent(self) -> bool:
        """Whether a byte of the request may have left: False only on evidence that none did."""
        return not (self.connecting in ("now", "failed") or (self.connecting == "done" and not self.requested))

    def cut_now(self) -> bool:
        """Shut the socket in use down (a blocked read or write fails at once); whether there was one."""
        with self._lock:
            if not self._done:
                self.cut = True
                _shut(self._socket)
            return self._socket is not None

    def finish(self) -> None:
        with self._lock:
            self._done = True


def _shut(sock: Any) -> None:
    """One system call that never blocks (an SSLSocket's own shutdown would unwrap it under its reader);
    closing is left to the thread that uses the socket. Closed already, or not connected yet: nothing."""
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Clock:
    """A thread that cuts each attempt whose deadline passes. It runs while attempts do, and _LINGER_S after the
    last (calls in a row share it); watching costs a lock, and the thread is woken only for an earlier deadline."""

    def __init__(self) -> None:
        self.lock, self.wakes, self.thread = threading.Condition(), 0.0, None
        self.watched: Dict[_Attempt, None] = {}  # the attempts under way

    thread: threading.Thread | None

    def watch(self, attempt: _Attempt) -> None:
        with self.lock:
            self.watched[attempt] = None
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="telnyx-streaming-start-clock", daemon=True)
                try:
                    self.thread.start()
                except RuntimeError:  # no thread can start now: each socket operation is still bounded
                    self.thread = None
            elif attempt.deadline < self.wakes:
                self.lock.notify()

    def unwatch(self, attempt: _Attempt) -> None:
        attempt.finish()  # from now on nothing of it is cut
        with self.lock:
            self.watched.pop(attempt, None)
            if not self.watched:
                self.lock.notify()  # it lingers, then ends

    def _run(self) -> None:
        with self.lock:
            idle = False
            while self.watched or not idle:
                now = time.monotonic()
                for attempt in [a for a in self.watched if a.deadline <= now]:
                    attempt.cut_now()
                    del self.watched[attempt]
                idle = not self.watched
                self.wakes = min((a.deadline for a in self.watched), default=now + _LINGER_S)
                self.lock.wait(self.wakes - now)
            self.thread = None


_LINGER_S = 0.25  # the clock's life after the last attempt: well under a second, nothing runs between calls
# The attempt of this thread: requests' and urllib3's signatures cannot carry it to the connection urllib3
# picks, so _try_once sets it and _AttemptConnection reads it (a lookup's thread gets a copy).
_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("telnyx_attempt", default=None)
_CLOCK = _Clock()
_LOOKUPS_AT_MOST = 64  # name lookups (or SOCKS handshakes) under way at once, each in a thread of its own
_LOOKUPS = threading.BoundedSemaphore(_LOOKUPS_AT_MOST)


class _MalformedHeadersError(http.client.HTTPException):
    """Header lines that do not parse: refused here, before urllib3 would log them (they may echo anything)."""


class _Response(http.client.HTTPResponse):
    """http.client's response, stricter: header lines that do not parse are refused, and a read of a given size
    never buffers more (http.client's read, given a negative chunk size, reads to the end of the stream)."""

    def begin(self) -> None:
        super().begin()
        try:
            assert_header_parsing(self.msg)
        except (urllib3.exceptions.HeaderParsingError, TypeError):
            raise _MalformedHeadersError("header lines that do not parse") from None

    def read(self, amt: int | None = None) -> bytes:
        if amt is None or amt < 0:
            return super().read(amt)
        buffer = bytearray(amt)
        size = self.readinto(buffer)  # bounded by the buffer, whatever the chunk sizes say
        return bytes(memoryview(buffer)[:size])


class _AttemptConnection:
    """Mixed into each connection class of the adapter's pools: it tells this thread's attempt its socket, as
    urllib3 sets it (before TLS or a proxy's tunnel, so the clock can cut those), and how far the request got;
    and it runs a connect that must look up a name or pass a SOCKS handshake in a thread of its own. Outside
    an attempt it is urllib3's."""

    response_class = _Response  # (4)
    debuglevel = property(lambda self: 0, lambda self, value: None)  # (4) debug output would show the key

    @property
    def sock(self) -> Any:  # (2)
        return vars(self).get("sock")

    @sock.setter
    def sock(self, value: Any) -> None:
        vars(self)["sock"] = value
        attempt = _ATTEMPT.get()
        if attempt is not None and value is not None:
            attempt.reached(sock=_os_socket(value))

    def connect(self) -> None:
        attempt = _ATTEMPT.get()
        if attempt is None:
            return super().connect()  # type: ignore[misc]
        attempt.reached(connecting="now")
        try:
            if attempt.socks or not _is_address(self.host):  # type: ignore[attr-defined]
                _connect_in_a_thread(self, attempt)
            else:
                super().connect()  # type: ignore[misc]
        except BaseException:
            attempt.reached(connecting="failed")
            raise
        return attempt.reached(connecting="done")

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.reached(requested=True, sock=_os_socket(self.sock))
        super().request(*args, **kwargs)  # type: ignore[misc]


def _os_socket(sock: Any) -> Any:
    """The OS socket under ``sock``: itself, or under urllib3's TLS inside TLS (3)."""
    return sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)


def _is_address(host: str) -> bool:
    try:
        return bool(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return False


def _connect_in_a_thread(conn: Any, attempt: _Attempt) -> None:
    """Connect ``conn`` in a thread this one waits for until the deadline at most. One that goes on after the
    deadline ends in its thread: a socket it opens is cut as it is set, and closed there."""
    done, failed = threading.Event(), []

    def run() -> None:
        try:
            super(_AttemptConnection, conn).connect()
        except BaseException as error:  # handed to the caller below
            failed.append(error)
            if attempt.cut:  # the caller has given up on it
                conn.close()
        finally:
            _LOOKUPS.release()
            done.set()

    if not _LOOKUPS.acquire(blocking=False):
        raise _TooManyLookups
    try:
        threading.Thread(target=copy_context().run, args=(run,), name="telnyx-lookup", daemon=True).start()
    except RuntimeError:  # no thread can start now: connecting runs here, each socket operation bounded
        run()
    try:
        if not done.wait(max(attempt.deadline - time.monotonic(), 0)):
            raise _DeadlinePassed
    except BaseException as error:  # the deadline, or the caller's own (Ctrl-C, a timer's signal handler)
        if attempt.cut_now():  # it has a socket: cut, its thread ends at once; let it end before urllib3 closes
            done.wait(1.0)
        if isinstance(error, (_DeadlinePassed, KeyboardInterrupt, SystemExit)):
            raise
        raise _Interrupted(error) from error  # through urllib3 and requests, which would take it for theirs
    if failed:
        raise failed[0]


@functools.cache
def _with_attempts(pool_class: Any) -> Any:
    """``pool_class`` (plain, TLS, SOCKS) whose connections are _AttemptConnection's (1)."""
    connection_class = pool_class.ConnectionCls
    if issubclass(connection_class, _AttemptConnection):
        return pool_class
    mixed = type(connection_class.__name__, (_AttemptConnection, connection_class), {})
    return type(pool_class.__name__, (pool_class,), {"ConnectionCls": mixed})


def _attempts_in(manager: Any) -> Any:  # a PoolManager, or a proxy's: its pools made by _with_attempts
    classes = manager.pool_classes_by_scheme  # (1)
    manager.pool_classes_by_scheme = {scheme: _with_attempts(pool) for scheme, pool in classes.items()}
    return manager


class _Adapter(HTTPAdapter):
    """requests' HTTPAdapter whose pools (direct, or through any proxy requests supports) use _AttemptConnection."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _attempts_in(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _attempts_in(super().proxy_manager_for(proxy, **proxy_kwargs))


_POOLS = threading.local()  # each calling thread's adapter (its pool): a cut never reaches another call's connection
_FORKED: List[Any] = []  # a parent's pools, kept (never closed) in a forked child: their sockets are the parent's
_USER_AGENT = f"windmill-telnyx-streaming-start/{__version__} {requests.utils.default_user_agent()}"


def _adapter() -> _Adapter:
    """This thread's adapter, made on its first call (Windmill's dedicated workers call from one thread)."""
    adapter = getattr(_POOLS, "adapter", None)
    if adapter is None:
        adapter = _POOLS.adapter = _Adapter(pool_connections=4, pool_maxsize=4, max_retries=0)
    return adapter


def _after_fork() -> None:
    """A forked child has none of its parent's threads: it starts its own clock, lookups and pools."""
    global _POOLS, _KEYS_LOCK, _LOOKUPS, _CLOCK
    _FORKED.append(_POOLS)
    _POOLS, _KEYS_LOCK, _LOOKUPS = threading.local(), threading.Lock(), threading.BoundedSemaphore(_LOOKUPS_AT_MOST)
    _CLOCK = _Clock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)


# An answer: its status, headers (requests' case-insensitive dict), body, and urllib3's response (Retry's policy
# reads it). A failure: its kind (a key of _FAILURES), what happened in our words, whether it may have been sent.
_Answer = collections.namedtuple("_Answer", "status headers content raw")
_Failure = collections.namedtuple("_Failure", "kind detail sent")


_FAILURES = {  # kind: (retried, what to check); the headline is _HEADLINES[kind], else "could not reach Telnyx"
    "resolve": (True, "Check the host name in TELNYX_BASE_URL and this worker's DNS."),
    "connect": (True, "Check the network and TELNYX_BASE_URL."),
    "tls": (
        False,
        "Check REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (unset them to use the bundled certificates) and TELNYX_BASE_URL.",
    ),
    "plain": (
        False,
        "TELNYX_BASE_URL starts with https:// but the server there answers without TLS: use http:// for a "
        "server on this machine (the emulator), or check the port.",
    ),
    "proxy": (False, "Check HTTPS_PROXY (its address and credentials), or unset it."),
    "other": (False, "Check TELNYX_BASE_URL and the HTTPS_PROXY, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE settings."),
    "timeout": (True, "Telnyx did not answer within timeout_s / deadline_s; raise them or check the network."),
    "deadline": (False, "deadline_s ran out before the request was written; raise deadline_s or check the network."),
    "dropped": (True, "The connection was closed before an answer came; check the network."),
    "unusable": (False, "Check TELNYX_BASE_URL."),
}
_LATE = "no answer in time (timeout or deadline)"
_HEADLINES = {"timeout": _LATE, "deadline": _LATE, "dropped": "no answer", "unusable": "no usable answer"}


def _post_with_retries(
    url: str, payload: Dict[str, Any], api_key: str, timeout_s: float, deadline: float, max_retries: int
) -> Any:
    """POST ``payload`` until an answer that is not retried, the retries are spent or ``deadline`` (a
    time.monotonic() value) passes: Telnyx's JSON, or a TelnyxAPIError / TelnyxConnectionError."""
    command_id = payload.get("command_id")
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
    request = requests.Request("POST", url, data=data, headers=headers).prepare()
    request.headers["Authorization"] = f"Bearer {api_key}"
    # the environment's proxy for https (a tunnel: the key stays encrypted); none for http, which only goes to
    # loopback: a proxy would read the key in clear text
    proxies = requests.utils.get_environ_proxies(url) if url.startswith("https:") else {}
    # Retry is the policy this loop asks: attempts left, the backoff, Retry-After. Which answers and failures
    # are retried is decided here (RETRY_STATUSES, _FAILURES), so it needs no forcelist. allowed_methods=None:
    # every method, as POST is safe to repeat with one command_id.
    retry = Retry(total=max_retries, allowed_methods=None, backoff_factor=0.25, backoff_jitter=0.25, backoff_max=4.0)
    attempts, sent = 0, False  # sent: whether a byte of the request may have left in any attempt
    answered = None  # Telnyx's last answer (a status worth a retry): what the error is when retries end
    while True:
        if time.monotonic() >= deadline:  # spent before this attempt could start
            failure = _Failure("deadline", "deadline_s passed before the request was sent", False)
            why = "deadline_s passed before a retry. " if answered is not None else ""
            return _give_up(answered, failure, command_id, attempts, api_key, why, sent)
        attempts += 1
        answer, failure = _try_once(request, timeout_s, deadline, proxies)
        sent = sent or failure is None or failure.sent
        if answer is not None and answer.status not in RETRY_STATUSES:
            return _result(answer, command_id, attempts, api_key)
        if failure is not None and not _FAILURES[failure.kind][0]:  # not worth another attempt
            return _give_up(answer, failure, command_id, attempts, api_key, "", sent)
        if failure is not None and answered is not None and time.monotonic() >= deadline:
            why = f"deadline_s stopped the retries (the last attempt: {failure.detail}). "
            return _give_up(answered, failure, command_id, attempts, api_key, why, sent)
        answered, retry_after = answer or answered, None
        try:
            if answer is not None:
                try:  # Retry-After as urllib3 reads it; unreadable (soon, 5,000 digits, the year 10000): none
                    retry_after = retry.get_retry_after(answer.raw)
                except (urllib3.exceptions.HTTPError, ValueError, OverflowError, TypeError):
                    pass  # Telnyx still answered: its status is what counts
                retry = retry.increment("POST", url, response=answer.raw)
            else:
                retry = retry.increment("POST", url, error=urllib3.exceptions.ProtocolError("retried"))
            exhausted = False
        except urllib3.exceptions.MaxRetryError:  # no retries left
            exhausted = True
        if exhausted:  # raised here, not in the except block: the error keeps no context
            return _give_up(answer, failure, command_id, attempts, api_key, "", sent)
        wait = max(retry_after or 0.0, retry.get_backoff_time())
        if time.monotonic() + wait >= deadline:
            why = "deadline_s would pass before a retry" + (
                f" (Telnyx asked to wait {retry_after:g} s)" if retry_after else ""
            )
            return _give_up(answer, failure, command_id, attempts, api_key, f"{why}. ", sent)
        time.sleep(wait)


def _give_up(answer: Any, failure: Any, command_id: str | None, attempts: int, api_key: str, why: str, sent: bool):
    if answer is not None:  # Telnyx answered (a retryable status): that answer is the error
        return _result(answer, command_id, attempts, api_key, why)
    raise TelnyxConnectionError(_no_answer_message(failure, attempts, command_id, why, sent), command_id, attempts)


def _send_and_read(request: requests.PreparedRequest, timeout_s: float, deadline: float, proxies: Dict[str, str]):
    """Send the request and read the answer, capped at MAX_RESPONSE_BYTES; settings requests would refuse
    are refused first, in our words (nothing was sent)."""
    left = max(deadline - time.monotonic(), 0.001)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and not os.path.exists(bundle):
        return None, _Failure("tls", f"the CA bundle {_show(bundle)} does not exist", False)
    if not all(map(_is_proxy_url, proxies.values())):
        return None, _Failure("proxy", "HTTPS_PROXY is not a proxy URL", False)
    response = _adapter().send(  # the adapter never reads the body: it is read below, capped
        request,
        timeout=(min(CONNECT_TIMEOUT_S, timeout_s, left), min(timeout_s, left)),
        verify=bundle or True,
        proxies=proxies,
    )
    with response:  # closing it unread closes the connection: a cut-off answer never returns to the pool
        status = response.status_code
        if not 200 <= status < 600:  # an interim 1xx as the answer: the real one is still unread
            return None, _Failure("unusable", f"the answer's status is {status}", True)
        content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
        if len(content) > MAX_RESPONSE_BYTES:
            detail = f"the answer (status {status}) is larger than {MAX_RESPONSE_BYTES} bytes and was not read"
            return None, _Failure("unusable", detail, True)
        return _Answer(status, response.headers, content, response.raw), None


def _is_proxy_url(proxy: str) -> bool:
    """Whether requests can use ``proxy`` (without a scheme it takes http://, as requests does)."""
    try:
        parts = urllib3.util.parse_url(proxy if "://" in proxy else f"http://{proxy}")
    except urllib3.exceptions.LocationParseError:
        return False
    return bool(parts.host) and parts.scheme in ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


def _classify(exc: BaseException, sent: bool) -> _Failure:
    """What a failure IS, decided once; ``sent`` is the attempt's evidence, not the error's."""
    try:
        kind, detail = _what_failed(exc)
    except Exception:  # a library that changed the shape of its errors: still one of our three errors
        kind, detail = "other", type(exc).__name__
    if kind == "other" and sent:  # an unforeseen failure once the request went out: the answer was the trouble
        kind = "unusable"
    return _Failure(kind, detail, sent)


def _what_failed(exc: BaseException) -> tuple:
    chain: List[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 16:  # urllib3 and requests raise each wrapper from its cause
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    found = lambda *kinds: next((e for e in chain if isinstance(e, kinds)), None)  # noqa: E731
    os_error = next((e for e in chain if isinstance(e, OSError) and e.strerror), None)
    why = os_error.strerror if os_error is not None else ""  # the OS's words: "Connection refused"
    socks_errors = [e for e in chain if type(e).__module__ == "socks"]  # PySocks' own errors, the cause last
    ssl_error = found(ssl.SSLError)
    if found(_TooManyLookups):
        return "resolve", f"{_LOOKUPS_AT_MOST} name lookups of earlier attempts have not returned: DNS is not answering"
    if socks_errors:
        return "proxy", f"the SOCKS proxy failed ({_show_text(str(socks_errors[-1]), 120)})"
    if found(urllib3.exceptions.ProxyError):
        if found(urllib3.exceptions.NewConnectionError, ConnectionError, socket.timeout):
            return "proxy", "the proxy could not be reached"
        # the proxy answered its CONNECT with a refusal: http.client says which, in an OSError of no errno
        refusal = next((e for e in chain if type(e) is OSError and e.errno is None and e.args), None)
        return "proxy", "the proxy refused to open a tunnel" + (
            f" ({_show_text(refusal.args[0], 120)})" if refusal else ""
        )
    if getattr(ssl_error, "reason", None) in _NOT_TLS:
        return "plain", "the server did not answer in TLS (it speaks plain HTTP, or another protocol)"
    if ssl_error is not None or found(urllib3.exceptions.SSLError):
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        reason = getattr(ssl_error, "verify_message", None) or getattr(
            ssl_error, "reason", None
        )  # "self-signed certificate"
        setting = f"the CA bundle {_show(bundle)}: " if bundle else ""
        return "tls", f"TLS failed ({setting}{_show_text(reason or 'the handshake failed', 120)})"
    name_error = found(urllib3.exceptions.NameResolutionError)  # raised from socket.gaierror; knows the host
    if name_error is not None:
        return "resolve", f"the host name {_show(name_error.conn.host)} did not resolve"
    if found(urllib3.exceptions.NewConnectionError, ConnectionRefusedError):
        return "connect", f"no connection ({why or 'refused'})"
    if found(urllib3.exceptions.ConnectTimeoutError):
        return "connect", "no connection (connecting timed out)"
    if found(urllib3.exceptions.ReadTimeoutError, socket.timeout):
        return "timeout", "the answer did not come within timeout_s"
    for kinds, what in _UNUSABLE:
        if found(*kinds) and not found(ConnectionError):  # (RemoteDisconnected is both: a dropped connection)
            return "unusable", what
    if found(ConnectionError, urllib3.exceptions.ProtocolError):  # reset, closed, broken pipe
        return "dropped", f"the connection was closed ({why or 'no answer'})"
    said: Any = exc.args[0] if len(exc.args) == 1 else exc.args  # the text, not a repr of the exception
    return "other", f"{type(exc).__name__}: {_show_text(said, 120)}"


_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE")  # OpenSSL's reason for an answer not in TLS, <3.2 / 3.2+
_UNUSABLE = (  # what makes an answer unusable, in the order checked
    ((_MalformedHeadersError,), "the answer has header lines that do not parse (not shown)"),
    ((http.client.LineTooLong,), "a line of the answer is too long"),
    ((urllib3.exceptions.DecodeError,), "the answer's content encoding cannot be decoded"),
    (
        (urllib3.exceptions.InvalidChunkLength, http.client.IncompleteRead),
        "the answer's body is cut short or misframed",
    ),
    ((http.client.BadStatusLine,), "the answer has no valid HTTP status line"),
    ((http.client.HTTPException, urllib3.exceptions.ResponseError), "the answer is not well-formed HTTP"),
)


# == The answer, read as the original reads it: response.text() is UTF-8 with the BOM stripped,
# whatever charset the headers name; JSON.parse of it is the result.
_NOT_JSON = object()


def _result(answer: _Answer, command_id: str | None, attempts: int, api_key: str, why: str = "") -> Any:
    text = answer.content.decode("utf-8", errors="replace")
    text = text[1:] if text.startswith("\ufeff") else text
    try:  # int() refuses NaN and Infinity, as JSON.parse does
        parsed = json.loads(text, parse_constant=int)
    except (ValueError, RecursionError):  # not JSON, or too deep
        parsed = _NOT_JSON
    if parsed is not _NOT_JSON:
        masked = _masked(parsed, api_key)
        if masked is not parsed:  # the key was in the answer, maybe hidden in a JSON escape
            parsed, text = masked, json.dumps(masked, ensure_ascii=False)
    status = answer.status
    if 200 <= status < 300:
        if not text.strip():
            return None  # the original's answer for a 2xx with no body: null, a success
        if isinstance(parsed, dict):
            result = StreamingStartResult(parsed)
            result.command_id, result.attempts = command_id, attempts
            return result
        if parsed is not _NOT_JSON:
            return parsed
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    errors = errors if isinstance(errors, list) else []
    request_id = answer.headers.get("x-request-id")
    lines = [f"{status} {text}", *_hints(status, errors, answer.headers, attempts, command_id, why, text)]  # the
    # first line is the original script's message, exactly
    lines.append(
        f"(command_id={command_id}, attempts={attempts}" + (f", request_id={request_id})" if request_id else ")")
    )
    raise TelnyxAPIError("\n".join(lines), status, text, errors, request_id, command_id, attempts)


def _hints(
    status: int, errors: List[Any], headers: Any, attempts: int, command_id: str | None, why: str, text: str
) -> List[str]:
    hints: List[str] = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        hint = HINTS.get(str(error.get("code")))
        source = error.get("source")
        pointer = source.get("pointer") if isinstance(source, dict) else None
        if hint is None and pointer:
            field = str(pointer).strip("/").replace("/", ".")
            detail = _show_text(error.get("detail") or error.get("title"))
            hint = f"Telnyx refused body field {_show_text(field)}: {detail}"
        if hint and hint not in hints:
            hints.append(hint)
    if 200 <= status < 300:  # not JSON, or an integer longer than this Python converts
        limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()  # 0: no limit (before 3.10.7)
        longest = max((len(run) for run in re.findall(r"\d+", text)), default=0) if limit else 0
        unread = f"holds an integer of {longest} digits, more than Python reads ({limit})" if longest > limit else ""
        hints.append(
            f"Telnyx answered {status}, so the command was most likely accepted, but the answer "
            f"{unread or 'is not JSON'}: check TELNYX_BASE_URL before running it again. {_safe_retry(command_id)}"
        )
    if not hints and status in STATUS_HINTS:
        hints.append(STATUS_HINTS[status])
    if 300 <= status < 400:
        try:
            host = urlsplit(headers.get("Location") or "").hostname
        except ValueError:  # "http://[::1" and the like
            host = None
        hints.append(
            f"Telnyx answered with a redirect to {_show_text(host) if host else 'an unreadable address'}; it was "
            "not followed, so the API key was not sent there. Check TELNYX_BASE_URL."
        )
    if status >= 500 or status in (408, 429):
        hints.append(f"Gave up after {attempts} attempt(s): {why}{_safe_retry(command_id)}")
    return hints


def _show_text(value: Any, limit: int = 200) -> str:
    text = str(value) if isinstance(value, str) else _show(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_retry(command_id: str | None, sent: bool = True) -> str:
    """How to run the command again without risking a second stream (``sent``: whether any attempt may have)."""
    if not sent:
        return "Nothing was sent to Telnyx (no byte of the request was written), so running it again is safe."
    if command_id is None:
        return (
            "The command may have reached Telnyx without a command_id, so Telnyx could not tell a repeat from it: "
            "before running it again, check whether a stream started (a streaming.started or streaming.failed "
            "webhook for this call), or stop the call's streams first (streaming_stop). Keep max_retries above 0 "
            "or pass a command_id, so that a repeat is dropped."
        )
    return "The command may have reached Telnyx: to run it again without risking a second stream, pass " + (
        f"body.command_id = {command_id!r}."
    )


def _no_answer_message(failure: _Failure, attempts: int, command_id: str | None, why: str, sent: bool) -> str:
    headline, fix = _HEADLINES.get(failure.kind, "could not reach Telnyx"), _FAILURES[failure.kind][1]
    advice, details = f"{why}{fix} {_safe_retry(command_id, sent)}", f"(command_id={command_id}, attempts={attempts})"
    return f"{headline} after {attempts} attempt(s): {failure.detail}\n{advice}\n{details}"


# == Masking the key. Keys are at least MIN_KEY_LENGTH characters, so matching them in any case (a URL's host is
# lowercased) never touches ordinary text. Anything shaped like a Telnyx API key ("KEY" + letters and digits +
# "_" + more), another tenant's key echoed by a server, is masked too (ordinary words are not KEY..._...).
_KEY_SHAPE = r"KEY[0-9A-Za-z]{0,64}_[0-9A-Za-z_-]{16,}"
_KEYS_SEEN: Dict[str, None] = {}  # the keys this process used last (at most 32): masked in urllib3's logs too
_KEYS_LOCK = threading.Lock()


def _remember_key(api_key: str) -> None:
    with _KEYS_LOCK:
        _KEYS_SEEN.pop(api_key, None)
        _KEYS_SEEN[api_key] = None  # the newest last
        while len(_KEYS_SEEN) > 32:
            del _KEYS_SEEN[next(iter(_KEYS_SEEN))]


@functools.lru_cache(maxsize=8)
def _key_pattern(api_key: str) -> re.Pattern:
    return re.compile(f"(?i:{re.escape(api_key)})|{_KEY_SHAPE}")


class _MaskKeys(logging.Filter):
    """On urllib3's loggers, at every level: a record that shows a key (whatever a server echoed
    into it) is logged with the key masked and without its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours to fix
            return True
        masked = message
        with _KEYS_LOCK:
            keys = list(_KEYS_SEEN)
        for key in keys or [""]:
            masked = _key_pattern(key).sub("***", masked) if key else re.sub(_KEY_SHAPE, "***", masked)
        if masked != message:
            record.msg, record.args, record.exc_info, record.exc_text = masked, None, None, None
        return True


for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.response", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_MaskKeys())


def _masked(value: Any, api_key: str) -> Any:
    """``value`` with the key replaced by ``***``: in a string, or in any JSON value (its decoded
    strings and keys, so ``"\\u004bEY..."`` is caught too). Returns ``value`` itself when clean."""
    pattern = _key_pattern(api_key)
    if isinstance(value, str):
        return pattern.sub("***", value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        dumped = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return _show(type(value).__name__)
    return json.loads(pattern.sub("***", dumped)) if pattern.search(dumped) else value


if __name__ == "__main__":  # a checkout's command line (script_cli.py); a Windmill job never runs this
    import importlib.util

    if importlib.util.find_spec("script_cli") is None:
        sys.exit(
            "This is the Windmill script alone: its command line (python script.py CALL_CONTROL_ID --body JSON) "
            "is script_cli.py, in the project's checkout beside script.py. Run it from a clone of the project."
        )
    from script_cli import cli

    sys.exit(cli(script=sys.modules[__name__]))  # this module, already compiled: nothing is compiled twice
