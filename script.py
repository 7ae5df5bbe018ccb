# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "requests>=2.32.4,<3",
#   "urllib3>=2.6.0,<3",
#   "jsonschema>=4.18,<5",
# ]
# ///
"""Telnyx — Streaming start: fork a live call's audio to your WebSocket server.

A Windmill script (also a plain Python function and a CLI). It POSTs
``{base}/calls/{call_control_id}/actions/streaming_start`` with the body you give, exactly as the
original hub script does, and adds what a live call needs: the body is checked before anything is
sent, a retry can never start a second stream (one ``command_id`` for every attempt), the whole
call (connecting, waiting, reading, retries) ends by a deadline, and errors say what to fix. The
API key is never printed, logged, raised or returned.

Read top to bottom: the resource type, the body's fields (the ONE place they are defined: the
validator and ``script.schema.json`` are built from it), ``main``, then the helpers.
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import io
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from typing import Any, Dict, List, Mapping, NamedTuple, TypedDict
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Retry
from urllib3.util.response import assert_header_parsing

__version__ = "1.1.0"


class telnyx(TypedDict):
    """The `telnyx` resource: an API key from portal.telnyx.com > Account settings > Keys."""

    apiKey: str


# The body Telnyx accepts: a JSON object with any of BODY_FIELDS. A string annotation keeps
# Windmill's parser from replacing the stored form (it reports it as "unknown").
StreamingStartBody = Mapping[str, Any]

CODECS = ["PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"]

# ---------------------------------------------------------------------------------------------
# The body's fields: the one place they are defined. Each value is the JSON Schema of the field,
# with the form hints Windmill honours (description, placeholder, password, nullable). The
# validator and script.schema.json are both derived from this dict; its order is the form's order.
# `nullable: true` makes Windmill's run form send null (not "") for a text or list field the user
# never touched, and skips the form's own pattern check on it; the script treats null, "" and []
# alike as "not set" anyway (older forms and flow steps send blanks).
# ---------------------------------------------------------------------------------------------
BODY_FIELDS: Dict[str, Dict[str, Any]] = {
    "stream_url": {
        "type": "string",
        "nullable": True,
        "description": (
            "WebSocket URL Telnyx connects to and streams the call's audio to, e.g. "
            "wss://your-server.example.com/media. Must start with wss:// (or ws://). Required unless "
            "enable_dialogflow is true (without either, nothing would stream). Telnyx is the WebSocket "
            "client: your server must be reachable from the internet."
        ),
        "pattern": r"^[wW][sS][sS]?://[^\s/?#]+([/?#]\S*)?$",
        "placeholder": "wss://your-server.example.com/media",
        "customErrorMessage": "must be a ws:// or wss:// URL with a host",
    },
    "stream_track": {
        "type": "string",
        "enum": ["inbound_track", "outbound_track", "both_tracks"],
        "description": (
            "Which audio to stream: the caller (inbound_track, Telnyx's default), what the call "
            "plays (outbound_track), or both, as separate tracks (both_tracks)."
        ),
        "placeholder": "inbound_track",
    },
    "stream_codec": {
        "type": "string",
        "enum": ["PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16", "default"],
        "description": (
            "Codec of the audio sent to your server. 'default' (or leaving it empty) keeps the "
            "call's codec; Telnyx's docs say it transcodes only between PCMU and PCMA."
        ),
        "placeholder": "default",
    },
    "stream_bidirectional_mode": {
        "type": "string",
        "enum": ["mp3", "rtp"],
        "description": (
            "Lets your server send audio back into the call: 'mp3' (base64 MP3 files; Telnyx's "
            "default) or 'rtp' (raw audio frames). Set 'rtp' to use stream_bidirectional_codec "
            "and stream_bidirectional_sampling_rate."
        ),
    },
    "stream_bidirectional_codec": {
        "type": "string",
        "enum": CODECS,
        "description": (
            "Codec of the audio your server sends back (case sensitive). Telnyx uses it only with "
            "stream_bidirectional_mode 'rtp', so the script refuses it without 'rtp' (the choice "
            "would be silently ignored). Telnyx's default: PCMU."
        ),
        "placeholder": "PCMU",
    },
    "stream_bidirectional_sampling_rate": {
        "type": "integer",
        "enum": [8000, 16000, 22050, 24000, 48000],
        "description": (
            "Sample rate in Hz of the audio your server sends back: 8000, 16000, 22050, 24000 or "
            "48000 (Telnyx's default: 8000). Used with stream_bidirectional_mode 'rtp'; the script "
            "refuses it without 'rtp'."
        ),
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
        "description": (
            "A secret Telnyx hands to your WebSocket server when it connects (header "
            "x-telnyx-streaming-auth-token and the 'connected' frame), so the server can reject "
            "strangers. At most 4000 characters."
        ),
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
        "description": (
            "Name/value pairs (strings) delivered to your server in the 'start' frame, e.g. "
            '[{"name": "tenant", "value": "acme"}]. An item left with both name and value empty is '
            "ignored; an item with only one of them empty is refused."
        ),
    },
    "enable_dialogflow": {
        "type": "boolean",
        "description": "Stream to Dialogflow (configured on your Telnyx connection). Default false.",
    },
    "dialogflow_config": {
        "type": "object",
        "properties": {
            "analyze_sentiment": {"type": "boolean"},
            "partial_automated_agent_reply": {"type": "boolean"},
        },
        "additionalProperties": False,
        "description": "Dialogflow options: analyze_sentiment, partial_automated_agent_reply (booleans).",
    },
    "client_state": {
        "type": "string",
        "nullable": True,
        "description": (
            "Base64 text echoed back in every later webhook of this call (e.g. base64 of a JSON "
            "with your own ids). Telnyx's spec requires Base-64, so other text is refused: encode it first."
        ),
        "placeholder": "eyJ0ZW5hbnQiOiAiYWNtZSJ9",
    },
    "command_id": {
        "type": "string",
        "nullable": True,
        "description": (
            "Idempotency key: Telnyx ignores a second command with the same command_id on the "
            "same call. Left empty (and max_retries above 0), the script makes one (a UUID) and "
            "sends it on every retry. "
            "Pass the webhook's event id to stay exactly-once across flow retries too."
        ),
    },
}

# Form and validator for main's other arguments; their defaults come from main's signature.
ARG_FIELDS: Dict[str, Dict[str, Any]] = {
    "auth": {
        "type": "object",
        "format": "resource-telnyx",
        "description": "Your telnyx resource (an API key).",
    },
    "call_control_id": {
        "type": "string",
        "originalType": "string",
        "description": (
            "The call to stream, from the webhook that started the flow: "
            "data.payload.call_control_id of call.answered (e.g. v3:9X2vxPDF...)."
        ),
        "placeholder": "v3:...",
    },
    "body": {
        "type": "object",
        "description": "What to stream and where. Unset fields (empty, null) are not sent.",
        "properties": BODY_FIELDS,
        "order": list(BODY_FIELDS),
        "additionalProperties": False,
    },
    "timeout_s": {
        "type": "number",
        "description": "Seconds one attempt may wait for Telnyx's answer (connecting: at most 3.05).",
    },
    "deadline_s": {
        "type": "number",
        "description": "Seconds the whole call may take: connecting, reading, retries and their waits.",
    },
    "max_retries": {
        "type": "integer",
        "description": (
            "Retries after a failed attempt (no answer, 408, 429, 500, 502, 503, 504). Safe: every "
            "attempt carries the same command_id. 0 turns retries off."
        ),
    },
}

DEFAULT_BASE_URL = "https://api.telnyx.com/v2"
MAX_RESPONSE_BYTES = 1 << 20  # answers larger than this are refused, not read into memory
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CONNECT_TIMEOUT_S = 3.05
MAX_DEPTH = 8  # no streaming_start field nests deeper than 3; deeper input is refused, not recursed into
MIN_KEY_LENGTH = 16  # a shorter "key" cannot be masked without corrupting ordinary text (README)


def main(
    auth: telnyx,
    call_control_id: str,
    body: "StreamingStartBody | None" = None,
    timeout_s: float = 10.0,
    deadline_s: float = 20.0,
    max_retries: int = 2,
) -> Any:
    """Start streaming a live call's audio to a WebSocket server.

    :param auth: the `telnyx` resource, ``{"apiKey": "KEY..."}``.
    :param call_control_id: ``data.payload.call_control_id`` of the call's webhook.
    :param body: the streaming_start body (see BODY_FIELDS); ``None``, ``""``, ``[]`` and ``{}``
        values mean "not set" and are not sent.
    :param timeout_s: seconds one attempt may wait for an answer.
    :param deadline_s: seconds the whole call may take, retries and reading included.
    :param max_retries: retries after a failed attempt; 0 turns them off.
    :return: Telnyx's JSON answer (``{"data": {"result": "ok"}}``): a dict whose ``command_id``
        attribute is the command_id that was sent; ``None`` for a 2xx with no body, as the
        original returns.
    :raises TelnyxInputError: (a ValueError) bad input; nothing was sent.
    :raises TelnyxAPIError: Telnyx answered non-2xx; ``str()`` starts with ``"<status> <text>"``.
    :raises TelnyxConnectionError: no answer (connection failed, timeout, deadline).
    """
    started = time.monotonic()
    api_key = _check_auth(auth)
    try:
        path_id = _check_call_control_id(call_control_id, api_key)
        payload = check_body(body)
        _check_limits(timeout_s, deadline_s, max_retries)
        url = f"{_base_url()}/calls/{path_id}/actions/streaming_start"
        if max_retries > 0:  # a retried POST is only safe with one command_id: Telnyx drops repeats
            payload.setdefault("command_id", str(uuid.uuid4()))
        return _post(url, payload, api_key, timeout_s, started + deadline_s, max_retries)
    except TelnyxError as error:
        error.mask(api_key)  # the one place every error passes: whatever a server echoed, the key goes
        raise


# ---------------------------------------------------------------------------------------------
# Errors: one flat tree. Bad input is also a ValueError. main() masks the key in every one.
# ---------------------------------------------------------------------------------------------
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
        self,
        message: str,
        status: int = 0,
        response_text: str = "",
        errors: List[Any] | None = None,
        request_id: str | None = None,
        command_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.response_text = response_text
        self.errors = errors or []
        self.codes = [str(e.get("code")) for e in self.errors if isinstance(e, dict) and "code" in e]
        self.request_id = request_id
        self.command_id = command_id
        self.attempts = attempts


class TelnyxConnectionError(TelnyxError):
    """No answer from Telnyx: connection refused or reset, timeout, or the deadline passed."""

    def __init__(self, message: str, command_id: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.attempts = attempts


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


# ---------------------------------------------------------------------------------------------
# Checks before sending. Each error names the field, what is wrong and the fix.
# ---------------------------------------------------------------------------------------------
def check_body(body: Mapping[str, Any] | None) -> Dict[str, Any]:
    """Return the body to send, checked against the form.

    ``None`` is dropped at any depth (JSON.stringify drops undefined; a Python caller's "unset" is
    None); a top-level ``""``, ``[]`` or ``{}`` is what Windmill's run form sends for a field the
    user never touched, so it is "not set" too. Tuples become lists.
    """
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise TelnyxInputError(
            f"body must be an object (a JSON dict of streaming_start fields), got "
            f'{type(body).__name__}. Example: {{"stream_url": "wss://example.com/media"}}.',
            "body",
        )
    payload = _without_blanks(_plain(body, "body", 0))
    for key in payload:
        if key not in BODY_FIELDS:
            raise TelnyxInputError(_unknown_key_message(key), f"body.{key}")
    _check_parameters(payload.get("custom_parameters"))  # before the schema, whose message would be vaguer
    errors = sorted(_validator().iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        raise TelnyxInputError(*_explain(errors[0]))
    _check_rules(payload)
    for key, spec in BODY_FIELDS.items():  # 16000.0 passes as an integer: send it as JSON.stringify does
        if spec["type"] == "integer" and isinstance(payload.get(key), float):
            payload[key] = int(payload[key])
    return payload


def _without_blanks(body: Dict[str, Any]) -> Dict[str, Any]:
    """The body without what the run form sends for a field left empty: ``""``, ``[]``, ``{}``, and a
    custom_parameters item whose name and value are both empty (a blank "+ Add item")."""
    params = body.get("custom_parameters")
    if isinstance(params, list):
        body["custom_parameters"] = [p for p in params if not (isinstance(p, dict) and _blank_parameter(p) == 2)]
    return {k: v for k, v in body.items() if v not in ("", [], {})}


def _blank_parameter(item: Dict[str, Any]) -> int:
    """How many of a custom parameter's name and value are empty (missing, None or "")."""
    return sum(item.get(key) in (None, "") for key in ("name", "value"))


def _plain(value: Any, field: str, depth: int) -> Any:
    """A copy of ``value`` in plain JSON types with None dropped, or a TelnyxInputError naming the
    field: bounded depth (no recursion error, no cycle), string keys, text JSON can carry."""
    if depth > MAX_DEPTH:
        raise TelnyxInputError(f"{field} is nested deeper than {MAX_DEPTH} levels: no streaming_start field is.", field)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TelnyxInputError(
                f"{field} contains a lone surrogate character, which JSON cannot carry: remove it.", field
            ) from None
        return value
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        if not -(2**53) <= value <= 2**53:
            raise TelnyxInputError(
                f"{field} is a {value.bit_length()}-bit integer: no field takes one that large.", field
            )
        return value
    if isinstance(value, Mapping):
        plain = {}
        for key, item in _items(value, field):
            if not isinstance(key, str):
                raise TelnyxInputError(f"{field} has a key of type {type(key).__name__}: keys must be strings.", field)
            if item is not None:
                plain[key] = _plain(item, f"{field}.{key}", depth + 1)
        return plain
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value) if item is not None]
    raise TelnyxInputError(
        f"{field} is a {type(value).__name__}, which JSON cannot carry: use a string, number, boolean, list or object.",
        field,
    )


def _items(mapping: Mapping[Any, Any], field: str) -> List[Any]:
    try:
        return list(mapping.items())
    except Exception:  # a hostile Mapping (unhashable keys, a raising __iter__): refused, never a crash
        raise TelnyxInputError(f"{field} cannot be read as an object: pass a plain dict.", field) from None


def _check_rules(payload: Dict[str, Any]) -> None:
    """The protective rules the schema cannot say well (each is in the README, with its reason)."""
    url = payload.get("stream_url")
    if url is None and payload.get("enable_dialogflow") is not True:
        raise TelnyxInputError(
            "body.stream_url is missing: with no stream_url and enable_dialogflow not true, Telnyx would "
            "accept the command and stream nothing, and the caller would hear silence. Set body.stream_url "
            "to your WebSocket server, e.g. wss://your-server.example.com/media (or set "
            "body.enable_dialogflow to true to stream to Dialogflow).",
            "body.stream_url",
        )
    if url is not None and _has_credentials(url):
        raise TelnyxInputError(
            "body.stream_url contains a user or password (the URL is not shown, to keep it out of logs): "
            "Telnyx would repeat it in every streaming.failed webhook. Remove it from the URL and pass the "
            "secret as body.stream_auth_token, which your server receives when Telnyx connects.",
            "body.stream_url",
        )
    if url is not None and not _is_ws_url(url):
        raise TelnyxInputError(
            f"body.stream_url must be a ws:// or wss:// URL with a host and no control characters, got "
            f"{_show(url)}. Example: wss://your-server.example.com/media.",
            "body.stream_url",
        )
    command_id = payload.get("command_id")
    if command_id is not None and not command_id.isprintable():
        raise TelnyxInputError(
            f"body.command_id contains control characters or line breaks, got {_show(command_id)}: "
            "use plain text, e.g. the webhook's data.id.",
            "body.command_id",
        )
    state = payload.get("client_state")
    if state is not None:
        try:
            base64.b64decode(state.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            example = base64.b64encode(state.encode()).decode() if len(state) <= 100 else None
            raise TelnyxInputError(
                "body.client_state must be base64, as Telnyx's spec requires (what Telnyx does with other "
                "text is not verified, so it is refused here); encode it first"
                + (f", e.g. {example!r}." if example else ".")
                + " Decode it again from data.payload.client_state of later webhooks.",
                "body.client_state",
            ) from None
    if payload.get("stream_bidirectional_mode") != "rtp":
        for key in ("stream_bidirectional_codec", "stream_bidirectional_sampling_rate"):
            if key in payload:
                raise TelnyxInputError(
                    f"body.{key} is only used when stream_bidirectional_mode is 'rtp' (Telnyx would "
                    f"silently ignore it): set stream_bidirectional_mode to 'rtp', or remove {key}.",
                    f"body.{key}",
                )


def _check_parameters(params: Any) -> None:
    """A custom parameter with only one of name and value filled in is a half-done form item."""
    for index, item in enumerate(params if isinstance(params, list) else []):
        if isinstance(item, dict) and _blank_parameter(item) == 1:
            empty = "name" if item.get("name") in (None, "") else "value"
            raise TelnyxInputError(
                f"body.custom_parameters[{index}] has an empty {empty}: fill in both name and value, or "
                "remove the item (an item with both empty is ignored).",
                f"body.custom_parameters[{index}]",
            )


def _is_ws_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("ws", "wss") and bool(host) and url.isprintable()


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
    return _check_key(auth.get("apiKey"), "auth.apiKey", RESOURCE_FIX)


def _check_key(key: Any, name: str, fix: str) -> str:
    """The key, or a TelnyxInputError naming where it came from (``name``) and how to fix it."""
    if not isinstance(key, str) or not key.strip():
        raise TelnyxInputError(f"{name} is missing or empty. {fix}", name)
    key = key.strip()
    if not key.isascii() or not key.isprintable() or any(c in key for c in ' "\\'):
        raise TelnyxInputError(
            f"{name} contains spaces, quotes, line breaks or non-ASCII characters (not shown). "
            f"Copy the key again. {fix}",
            name,
        )
    if len(key) < MIN_KEY_LENGTH:
        raise TelnyxInputError(
            f"{name} is {len(key)} characters: a Telnyx API key is longer. Copy the whole key. {fix}", name
        )
    return key


def _check_call_control_id(call_control_id: Any, api_key: str) -> str:
    """The id, percent-encoded as ONE path segment: it can never change the path or query."""
    fix = "Pass data.payload.call_control_id of the call.answered webhook, e.g. v3:9X2vxPDF..."
    name = "call_control_id"
    if isinstance(call_control_id, str):
        call_control_id = call_control_id.strip()  # a pasted id's newline, as the original's URL parser does
    if not isinstance(call_control_id, str) or not call_control_id:
        got = "an empty string" if call_control_id == "" else type(call_control_id).__name__
        raise TelnyxInputError(f"{name} must be a non-empty string, got {got}. {fix}", name)
    if call_control_id == api_key:
        raise TelnyxInputError(
            f"{name} is your API key (not shown): the arguments look swapped. auth is the telnyx resource; {fix}",
            name,
        )
    if len(call_control_id) > 512:
        raise TelnyxInputError(f"{name} is {len(call_control_id)} characters, too long for an id. {fix}", name)
    if not call_control_id.isprintable() or " " in call_control_id:  # isprintable() refuses other whitespace
        raise TelnyxInputError(
            f"{name} contains spaces, line breaks or control characters: {_show(call_control_id)}. {fix}",
            name,
        )
    if call_control_id in (".", ".."):
        raise TelnyxInputError(f"{name} {call_control_id!r} is not an id. {fix}", name)
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
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))
    if (
        secure
        and host
        and raw.isprintable()
        and not (parts.username or parts.password or parts.query or parts.fragment)
    ):
        return raw.rstrip("/")
    raise TelnyxInputError(
        f"TELNYX_BASE_URL must be an https:// URL (http:// only to 127.0.0.1, ::1 or localhost), "
        f"with no user, query or fragment; got {_show(raw)}. Unset it to use {DEFAULT_BASE_URL}.",
        "TELNYX_BASE_URL",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_VALIDATOR: Any = None


def _validator() -> Any:
    """The body's validator, built once per process (jsonschema is imported on first use)."""
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft202012Validator

        _VALIDATOR = Draft202012Validator(ARG_FIELDS["body"])
    return _VALIDATOR


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


def _unknown_key_message(key: str) -> str:
    import difflib  # only on this error path: keeps it out of every cold start

    close = difflib.get_close_matches(key, list(BODY_FIELDS), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "check the spelling."
    return f"body has an unknown field {_show(key)}: {hint} Fields streaming_start accepts: {', '.join(BODY_FIELDS)}."


def _show(value: Any, limit: int = 80) -> str:
    """A short repr for a message; never raises (a huge int or a hostile __repr__ is named by type)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 5] + "...'"


# ---------------------------------------------------------------------------------------------
# HTTP. One pooled HTTPAdapter per process (no Session: no cookies, no redirect handling, no
# ~/.netrc). The retry loop is written out in _post; urllib3's Retry is the policy it asks
# (attempts left, backoff, Retry-After). The deadline bounds every phase: connecting through the
# connect timeout (never longer than what is left), reading through _DeadlineReader.
# ---------------------------------------------------------------------------------------------
class _Attempt(NamedTuple):
    deadline: float  # time.monotonic() by which the whole call ends
    read_timeout: float  # the longest one read may wait (timeout_s)


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("telnyx_streaming_start_attempt", default=None)


class _DeadlineReader(io.RawIOBase):
    """What http.client's response reads from: its socket reader, with every read waiting at most
    timeout_s and never past the deadline, so a server that drips one byte a second is cut off (a
    socket timeout alone restarts on every byte)."""

    def __init__(self, raw: Any, sock: socket.socket, attempt: _Attempt) -> None:
        super().__init__()
        self._raw, self._sock, self._attempt = raw, sock, attempt

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()  # http.client's socket reader: it keeps the socket open until it is closed
        super().close()

    def readinto(self, buffer: Any) -> Any:
        left = self._attempt.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline_s reached while reading the answer")
        self._sock.settimeout(min(self._attempt.read_timeout, left))
        return self._raw.readinto(buffer)


class _MalformedHeaders(http.client.HTTPException):
    """An answer whose header lines do not parse (raised before urllib3 would log them)."""

    MESSAGE = "the answer has header lines that do not parse (not shown)"


class _OtherError(urllib3.exceptions.HTTPError):
    """A failure that is neither "no connection" nor "no answer" (a bad CA bundle or proxy setting,
    anything unforeseen): Retry counts it as "other", which is final. Only the original's type name
    and text are kept, so nothing of the request (its Authorization header) stays reachable."""


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, read through _DeadlineReader during one of this script's attempts."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        attempt = _ATTEMPT.get()
        if attempt is not None:
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, attempt))

    def begin(self) -> None:
        super().begin()
        try:
            assert_header_parsing(self.msg)
        except (urllib3.exceptions.HeaderParsingError, TypeError):
            # urllib3 would log the unparsed lines at WARNING, whatever they echo (the key too)
            raise _MalformedHeaders from None  # _cause tells it apart: what the user reads is its MESSAGE


class _HTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' HTTPAdapter whose pools (direct or through a proxy) use the classes above."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


_ADAPTER: _Adapter | None = None
_ADAPTER_LOCK = threading.Lock()
_USER_AGENT = f"windmill-telnyx-streaming-start/{__version__} {requests.utils.default_user_agent()}"


def _adapter() -> _Adapter:
    """The process's adapter (Windmill's dedicated workers keep the process: connections are reused)."""
    global _ADAPTER
    with _ADAPTER_LOCK:
        if _ADAPTER is None:
            _ADAPTER = _Adapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        return _ADAPTER


class _Answer(NamedTuple):
    status: int
    headers: Any  # requests' case-insensitive dict
    content: bytes
    raw: Any  # urllib3's response, for Retry's policy


def _post(url: str, payload: Dict[str, Any], api_key: str, timeout_s: float, deadline: float, max_retries: int) -> Any:
    command_id = payload.get("command_id")
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
    request = requests.Request("POST", url, data=data, headers=headers).prepare()
    request.headers["Authorization"] = f"Bearer {api_key}"
    # Retry is the policy this loop asks: attempts left, the backoff, Retry-After. Which statuses are
    # retried is decided here (RETRY_STATUSES), and a 3xx is returned before Retry is asked, so it
    # needs neither status_forcelist nor a redirect count.
    retry = Retry(
        total=max_retries,
        other=0,  # an error that is neither "no connection" nor "no answer" (TLS, decoding) is final
        allowed_methods=None,  # every method: POST is safe to repeat with one command_id
        backoff_factor=0.25,
        backoff_jitter=0.25,
        backoff_max=4.0,
    )
    attempts = 0
    sent = False  # whether any attempt may have reached Telnyx (a connect failure sends nothing)
    while True:
        attempts += 1
        answer, failure = _attempt(request, timeout_s, deadline)
        sent = sent or not isinstance(failure, urllib3.exceptions.ConnectTimeoutError)  # NewConnectionError too
        if answer is not None and answer.status not in RETRY_STATUSES:
            return _result(answer, command_id, attempts, api_key)
        retry_after = None
        try:
            if answer is not None:
                retry_after = _retry_after(retry, answer.raw)
                retry = retry.increment("POST", url, response=answer.raw)
            else:
                retry = retry.increment("POST", url, error=failure)
            exhausted = False
        except urllib3.exceptions.MaxRetryError:  # no retries left, or a failure not worth retrying
            exhausted = True
        if exhausted:  # raised here, not in the except block: the error keeps no context
            return _give_up(answer, failure, command_id, attempts, api_key, "", sent)
        wait = max(retry_after or 0.0, retry.get_backoff_time())
        if time.monotonic() + wait >= deadline:
            asked = f" (Telnyx asked to wait {retry_after:g} s)" if retry_after else ""
            return _give_up(
                answer, failure, command_id, attempts, api_key, f"deadline_s would pass before a retry{asked}. ", sent
            )
        time.sleep(wait)


def _attempt(request: requests.PreparedRequest, timeout_s: float, deadline: float) -> tuple:
    """One attempt: ``(_Answer, None)`` when the server answered, ``(None, urllib3 error)`` when not."""
    left = deadline - time.monotonic()
    token = _ATTEMPT.set(_Attempt(deadline, timeout_s))
    failure: Exception | None = None
    try:
        response = _adapter().send(  # the adapter never reads the body: it is read below, capped
            request,
            timeout=(min(CONNECT_TIMEOUT_S, timeout_s, left), min(timeout_s, left)),
            verify=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True,
            proxies=_proxies(request.url or ""),
        )
        with response:
            content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
        if len(content) > MAX_RESPONSE_BYTES:
            failure = urllib3.exceptions.ResponseError(
                f"the answer (status {response.status_code}) is larger than {MAX_RESPONSE_BYTES} bytes and was "
                "not read; check TELNYX_BASE_URL"
            )
        else:
            return _Answer(response.status_code, response.headers, content, response.raw), None
    except Exception as exc:  # whatever the server or the network did: one of three errors, never a crash
        failure = _cause(exc)
    finally:
        _ATTEMPT.reset(token)
    return None, failure


def _proxies(url: str) -> Dict[str, str]:
    """The environment's proxy for https (the request is tunnelled, the key stays encrypted); none
    for http, which only goes to loopback: a proxy would read the key in clear text."""
    return requests.utils.get_environ_proxies(url) if url.startswith("https:") else {}


def _cause(exc: Exception) -> Exception:
    """The urllib3 error under requests' wrappers (Retry's policy tells connect from read errors by it)."""
    while isinstance(exc, requests.RequestException) and exc.args and isinstance(exc.args[0], Exception):
        exc = exc.args[0]
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.ProtocolError) and any(isinstance(a, _MalformedHeaders) for a in exc.args):
        exc = urllib3.exceptions.ResponseError(_MalformedHeaders.MESSAGE)  # an answer, unusable: not retried
    elif not isinstance(exc, urllib3.exceptions.HTTPError):
        detail = exc.args[0] if len(exc.args) == 1 else exc.args  # the text, not a repr of the exception
        exc = _OtherError(f"{type(exc).__name__}: {_show_text(detail)}")
    exc.__context__ = exc.__cause__ = None
    exc.__traceback__ = None
    return exc


def _retry_after(retry: Retry, raw: Any) -> float | None:
    """Retry-After in seconds as urllib3 reads it, or None when absent or unreadable (``soon``,
    5,000 digits, the year 10000): Telnyx still answered, so its status is what counts."""
    try:
        return retry.get_retry_after(raw)
    except (urllib3.exceptions.HTTPError, ValueError, OverflowError, TypeError):
        return None


def _give_up(
    answer: _Answer | None,
    failure: Exception | None,
    command_id: str | None,
    attempts: int,
    api_key: str,
    why: str,
    sent: bool,
) -> Any:
    if answer is not None:  # Telnyx answered (a retryable status): that answer is the error
        return _result(answer, command_id, attempts, api_key, why)
    message = _no_answer_message(failure, attempts, command_id, why, sent)
    raise TelnyxConnectionError(message, command_id, attempts)


# ---------------------------------------------------------------------------------------------
# The answer, read as the original reads it: response.text() is UTF-8 with the BOM stripped,
# whatever charset the headers name; JSON.parse of it is the result.
# ---------------------------------------------------------------------------------------------
_NOT_JSON = object()


def _result(answer: _Answer, command_id: str | None, attempts: int, api_key: str, why: str = "") -> Any:
    text = answer.content.decode("utf-8", errors="replace")
    text = text[1:] if text.startswith("\ufeff") else text
    parsed = _parse_json(text)
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
    lines = [f"{status} {text}"]  # the original script's message, exactly
    lines += _hints(status, errors, answer.headers, attempts, command_id, why)
    details = f"command_id={command_id}, attempts={attempts}"
    lines.append(f"({details}" + (f", request_id={request_id})" if request_id else ")"))
    raise TelnyxAPIError(
        "\n".join(lines),
        status=status,
        response_text=text,
        errors=errors,
        request_id=request_id,
        command_id=command_id,
        attempts=attempts,
    )


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to be Telnyx's
        return _NOT_JSON


def _hints(status: int, errors: List[Any], headers: Any, attempts: int, command_id: str | None, why: str) -> List[str]:
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
    if 200 <= status < 300:
        hints.append(
            f"Telnyx answered {status}, so the command was most likely accepted, but the answer is not "
            f"JSON: check TELNYX_BASE_URL before running it again. {_safe_retry(command_id)}"
        )
    if not hints and status in STATUS_HINTS:
        hints.append(STATUS_HINTS[status])
    if 300 <= status < 400:
        hints.append(
            f"Telnyx answered with a redirect to {_redirect_host(headers.get('Location'))}; it was not "
            f"followed, so the API key was not sent there. Check TELNYX_BASE_URL."
        )
    if status >= 500 or status in (408, 429):
        hints.append(f"Gave up after {attempts} attempt(s): {why}{_safe_retry(command_id)}")
    return hints


def _redirect_host(location: str | None) -> str:
    try:
        host = urlsplit(location or "").hostname
    except ValueError:  # "http://[::1" and the like
        host = None
    return _show_text(host) if host else "an unreadable address"


def _show_text(value: Any, limit: int = 200) -> str:
    text = str(value) if isinstance(value, str) else _show(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_retry(command_id: str | None, sent: bool = True) -> str:
    """How to run the command again without risking a second stream (``sent``: whether any attempt
    may have reached Telnyx)."""
    if not sent:
        return "Nothing was sent to Telnyx (no connection was made), so running it again is safe."
    if command_id is None:
        return (
            "The command may have reached Telnyx without a command_id, so Telnyx could not tell a repeat "
            "from it: before running it again, check whether a stream started (a streaming.started or "
            "streaming.failed webhook for this call), or stop the call's streams first (streaming_stop). "
            "Keep max_retries above 0 or pass a command_id, so that a repeat is dropped."
        )
    return (
        f"The command may have reached Telnyx: to run it again without risking a second stream, "
        f"pass body.command_id = {command_id!r}."
    )


def _no_answer_message(failure: Exception | None, attempts: int, command_id: str | None, why: str, sent: bool) -> str:
    timed_out = isinstance(failure, urllib3.exceptions.TimeoutError) and not isinstance(
        failure,
        urllib3.exceptions.NewConnectionError,  # a subclass of ConnectTimeoutError, for history
    )
    if timed_out:
        what = "no answer in time (timeout or deadline)"
        fix = "Telnyx did not answer within timeout_s / deadline_s; raise them or check the network. "
    elif isinstance(failure, urllib3.exceptions.ResponseError):  # an answer was there: too large, or broken
        what = "no usable answer"
        fix = "Check TELNYX_BASE_URL. "
    elif isinstance(failure, _OtherError):  # failed before or outside the exchange: most often a setting
        what = "could not reach Telnyx"
        fix = "Check TELNYX_BASE_URL and the HTTPS_PROXY, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE settings. "
    else:
        what = "could not reach Telnyx"
        fix = "Check the network and TELNYX_BASE_URL. "
    named = str(failure) if isinstance(failure, _OtherError) else f"{type(failure).__name__}: {failure}"
    cause = _show_text(named, 300)
    details = f"(command_id={command_id}, attempts={attempts})"
    return f"{what} after {attempts} attempt(s): {cause}\n{why}{fix}{_safe_retry(command_id, sent)}\n{details}"


# ---------------------------------------------------------------------------------------------
# Masking the key. Keys are at least MIN_KEY_LENGTH characters, so matching them in any case
# (a URL's host is lowercased) never touches ordinary text.
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _key_pattern(api_key: str) -> re.Pattern:
    return re.compile(re.escape(api_key), re.IGNORECASE)


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


# ---------------------------------------------------------------------------------------------
# The form and the CLI.
# ---------------------------------------------------------------------------------------------
def windmill_schema() -> Dict[str, Any]:
    """script.schema.json: the arguments' form, from ARG_FIELDS and main's signature."""
    import inspect

    params = inspect.signature(main).parameters
    properties = {}
    for name, param in params.items():
        prop = dict(ARG_FIELDS[name])
        prop["default"] = None if param.default is inspect.Parameter.empty else param.default
        properties[name] = dict(sorted(prop.items()))  # Windmill's CLI sorts each property's keys
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "order": list(params),
        "properties": properties,
        "required": [n for n, p in params.items() if p.default is inspect.Parameter.empty],
    }


EXIT_INPUT, EXIT_API, EXIT_NO_ANSWER = 2, 3, 4
CLI_KEY_FIX = "export TELNYX_API_KEY=KEY... (your Telnyx API key, from portal.telnyx.com > Account settings > Keys)."


def cli(argv: List[str] | None = None) -> int:
    """``python script.py CALL_CONTROL_ID --body JSON``; the key comes from TELNYX_API_KEY."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="script.py",
        description="Start streaming a live Telnyx call's audio to your WebSocket server.",
        epilog=(
            "The API key is read from TELNYX_API_KEY; TELNYX_BASE_URL overrides the API address. "
            f"Exit codes: 0 ok, {EXIT_INPUT} bad input (nothing sent), {EXIT_API} Telnyx answered "
            f"with an error, {EXIT_NO_ANSWER} no answer. Example: TELNYX_API_KEY=KEY... python "
            'script.py v3:abc --body \'{"stream_url": "wss://example.com/media"}\''
        ),
    )
    parser.add_argument("call_control_id", nargs="?", help="data.payload.call_control_id of call.answered")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--body", help="the streaming_start body as JSON")
    source.add_argument("--body-file", metavar="PATH", help="read the body from a JSON file ('-' for stdin)")
    import inspect  # jsonschema imports it anyway: no extra start-up cost

    default = {name: p.default for name, p in inspect.signature(main).parameters.items()}  # one source of defaults
    timeout, deadline, retries = default["timeout_s"], default["deadline_s"], default["max_retries"]
    parser.add_argument("--timeout", type=float, default=timeout, help=f"seconds per attempt (default {timeout:g})")
    parser.add_argument(
        "--deadline", type=float, default=deadline, help=f"seconds in all, retries included (default {deadline:g})"
    )
    parser.add_argument(
        "--retries", type=int, default=retries, help=f"retries after a failed attempt (default {retries})"
    )
    parser.add_argument("--print-schema", action="store_true", help="print script.schema.json and exit")
    args = parser.parse_args(argv)
    if args.print_schema:
        print(json.dumps(windmill_schema(), indent=2, ensure_ascii=False))
        return 0
    try:
        if args.call_control_id is None:
            raise TelnyxInputError(
                "call_control_id is missing: python script.py CALL_CONTROL_ID --body JSON", "call_control_id"
            )
        key = _check_key(os.environ.get("TELNYX_API_KEY"), "TELNYX_API_KEY", CLI_KEY_FIX)
        if args.call_control_id.strip() == key:
            raise TelnyxInputError(
                "The CALL_CONTROL_ID argument is your API key (not shown): the two look swapped. Pass the "
                "call's call_control_id as the argument, and the key in TELNYX_API_KEY.",
                "call_control_id",
            )
        body = _cli_body(args.body, args.body_file)
        result = main(
            {"apiKey": key},
            args.call_control_id,
            body,
            timeout_s=args.timeout,
            deadline_s=args.deadline,
            max_retries=args.retries,
        )
    except TelnyxInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except TelnyxAPIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API
    except TelnyxConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    print(json.dumps(result))
    return 0


def _cli_body(text: str | None, path: str | None) -> Any:
    if path is not None:
        try:
            text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        except OSError as exc:
            raise TelnyxInputError(f"--body-file: cannot read {path}: {exc.strerror}", "body") from None
        except UnicodeDecodeError:
            raise TelnyxInputError(f"--body-file: {path} is not UTF-8 text: save it as UTF-8 JSON.", "body") from None
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise TelnyxInputError("body is nested too deep to be a streaming_start body.", "body") from None
    except ValueError as exc:
        raise TelnyxInputError(
            f'body is not valid JSON ({exc}). Example: --body \'{{"stream_url": "wss://example.com/media"}}\'',
            "body",
        ) from None


if __name__ == "__main__":
    sys.exit(cli())
