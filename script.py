# /// script
# requires-python = ">=3.9"
# dependencies = [
#   "requests>=2.30,<3",
#   "urllib3>=2.0.2,<3",
#   "jsonschema>=4.18,<5",
# ]
# ///
"""Telnyx — Streaming start: fork a live call's audio to your WebSocket server.

A Windmill script (also a plain Python function and a CLI). It POSTs
``{base}/calls/{call_control_id}/actions/streaming_start`` with the body you give, exactly as the
original hub script does, and adds what a live call needs: the body is checked before anything is
sent, a retry can never start a second stream (one ``command_id`` for every attempt), every attempt
has a timeout and the whole call a deadline, and errors say what to fix. The API key is never
printed, logged, raised or returned.

Read top to bottom: the resource type, the body's fields (the ONE place they are defined: the
validator and ``script.schema.json`` are built from it), ``main``, then the helpers.
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.cookiejar
import ipaddress
import json
import os
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from typing import Any, Dict, List, Mapping, TypedDict
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util import Retry, Timeout

__version__ = "1.0.0"


class telnyx(TypedDict):
    """The `telnyx` resource: an API key from portal.telnyx.com > Account settings > Keys."""

    apiKey: str


# The body Telnyx accepts: a JSON object with any of BODY_FIELDS. A string annotation keeps
# Windmill's parser from replacing the stored form (it reports it as "unknown").
StreamingStartBody = Mapping[str, Any]

CODECS = ["PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"]

# ---------------------------------------------------------------------------------------------
# The body's fields: the one place they are defined. Each value is the JSON Schema of the field,
# with the form hints Windmill honours (description, placeholder, password). The validator and
# script.schema.json are both derived from this dict; its order is the form's order.
# ---------------------------------------------------------------------------------------------
BODY_FIELDS: Dict[str, Dict[str, Any]] = {
    "stream_url": {
        "type": "string",
        "description": (
            "WebSocket URL Telnyx connects to and streams the call's audio to, e.g. "
            "wss://your-server.example.com/media. Must start with wss:// (or ws://). Needed unless "
            "enable_dialogflow is true. Telnyx is the WebSocket client: your server must be "
            "reachable from the internet."
        ),
        "pattern": r"^wss?://[^\s/?#]+([/?#]\S*)?$",
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
            "call's codec; Telnyx only transcodes between PCMU and PCMA."
        ),
        "placeholder": "default",
    },
    "stream_bidirectional_mode": {
        "type": "string",
        "enum": ["mp3", "rtp"],
        "description": (
            "Lets your server send audio back into the call: 'mp3' (base64 MP3 files, at most one "
            "a second) or 'rtp' (raw audio frames). Set 'rtp' to use stream_bidirectional_codec "
            "and stream_bidirectional_sampling_rate."
        ),
    },
    "stream_bidirectional_codec": {
        "type": "string",
        "enum": CODECS,
        "description": (
            "Codec of the audio your server sends back (case sensitive). Only used with "
            "stream_bidirectional_mode 'rtp': without it the audio you send back is lost, so "
            "the script refuses it. Telnyx's default: PCMU."
        ),
        "placeholder": "PCMU",
    },
    "stream_bidirectional_sampling_rate": {
        "type": "integer",
        "enum": [8000, 16000, 22050, 24000, 48000],
        "description": (
            "Sample rate in Hz of the audio your server sends back. Only used with "
            "stream_bidirectional_mode 'rtp'. PCMU, PCMA and G722 use 8000; OPUS and AMR-WB 8000 "
            "or 16000; L16 16000. Telnyx's default: 8000."
        ),
        "placeholder": "8000",
    },
    "stream_bidirectional_target_legs": {
        "type": "string",
        "enum": ["both", "self", "opposite"],
        "description": "Which call legs hear the audio your server sends back.",
    },
    "stream_auth_token": {
        "type": "string",
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
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
            "required": ["name", "value"],
            "additionalProperties": False,
        },
        "description": (
            "Name/value pairs (strings) delivered to your server in the 'start' frame, e.g. "
            '[{"name": "tenant", "value": "acme"}].'
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
        "description": (
            "Base64 text echoed back in every later webhook of this call (e.g. base64 of a JSON "
            "with your own ids). Plain text is refused: encode it first."
        ),
        "placeholder": "eyJ0ZW5hbnQiOiAiYWNtZSJ9",
    },
    "command_id": {
        "type": "string",
        "minLength": 1,
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
        "description": "What to stream and where. Unset fields are not sent.",
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
        "description": "Seconds the whole call may take, retries and their waits included.",
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
RETRY_AFTER_CAP_S = 10.0  # a Retry-After above this is cut down (and still bounded by the deadline)
CONNECT_TIMEOUT_S = 3.05


def main(
    auth: telnyx,
    call_control_id: str,
    body: "StreamingStartBody | None" = None,
    timeout_s: float = 10.0,
    deadline_s: float = 20.0,
    max_retries: int = 2,
) -> StreamingStartResult:
    """Start streaming a live call's audio to a WebSocket server.

    :param auth: the `telnyx` resource, ``{"apiKey": "KEY..."}``.
    :param call_control_id: ``data.payload.call_control_id`` of the call's webhook.
    :param body: the streaming_start body (see BODY_FIELDS); ``None`` values are not sent.
    :param timeout_s: seconds one attempt may wait for an answer.
    :param deadline_s: seconds the whole call may take, retries included.
    :param max_retries: retries after a failed attempt; 0 turns them off.
    :return: Telnyx's JSON answer, unchanged (``{"data": {"result": "ok"}}``); as a dict whose
        ``command_id`` attribute is the command_id that was sent.
    :raises TelnyxInputError: (a ValueError) bad input; nothing was sent.
    :raises TelnyxAPIError: Telnyx answered non-2xx; ``str()`` starts with ``"<status> <text>"``.
    :raises TelnyxConnectionError: no answer (connection failed, timeout, deadline).
    """
    started = time.monotonic()
    api_key = _check_auth(auth)
    path_id = _check_call_control_id(call_control_id)
    payload = check_body(body)
    _check_limits(timeout_s, deadline_s, max_retries)
    url = f"{_base_url()}/calls/{path_id}/actions/streaming_start"
    if max_retries > 0:  # a retried POST is only safe with one command_id: Telnyx drops repeats
        payload.setdefault("command_id", str(uuid.uuid4()))
    return _post(url, payload, api_key, timeout_s, started + deadline_s, max_retries)


# ---------------------------------------------------------------------------------------------
# Errors: one flat tree. Bad input is also a ValueError. Every message avoids the API key.
# ---------------------------------------------------------------------------------------------
class TelnyxError(Exception):
    """Base of every error this script raises."""


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


# What to do about the errors users hit most, by Telnyx error code.
HINTS = {
    "90018": "The call has already ended (the caller hung up): nothing to stream. Start the "
    "stream as soon as call.answered arrives; do not retry.",
    "90015": "Telnyx does not know this call_control_id: pass data.payload.call_control_id of "
    "the call's webhook unchanged, with an API key of the same Telnyx account.",
    "90034": "The call is not answered yet: start the stream after call.answered (not "
    "call.initiated), or pass stream_url to the answer command instead.",
    "10009": "Authentication failed: the API key in the telnyx resource is wrong or revoked. "
    "Create a key at portal.telnyx.com > Account settings > Keys and update the resource.",
    "10011": "Rate limited by Telnyx: slow down, or raise max_retries / deadline_s.",
}
STATUS_HINTS = {
    401: HINTS["10009"],
    403: "The API key is not allowed to control this call: use a key of the account that owns it.",
    404: "No such call or endpoint: check call_control_id and TELNYX_BASE_URL.",
    429: HINTS["10011"],
}


# ---------------------------------------------------------------------------------------------
# Checks before sending. Each error names the field, what is wrong and the fix.
# ---------------------------------------------------------------------------------------------
def check_body(body: Mapping[str, Any] | None) -> Dict[str, Any]:
    """Return the body to send: ``None`` values dropped (also nested), checked against the form."""
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise TelnyxInputError(
            f"body must be an object (a JSON dict of streaming_start fields), got "
            f'{type(body).__name__}. Example: {{"stream_url": "wss://example.com/media"}}.',
            "body",
        )
    payload = _drop_none(body)
    for key in payload:
        if key not in BODY_FIELDS:
            raise TelnyxInputError(_unknown_key_message(key), f"body.{key}")
    errors = sorted(_validator().iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        raise TelnyxInputError(*_explain(errors[0]))
    _check_rules(payload)
    _check_text(payload, "body")
    return payload


def _check_rules(payload: Dict[str, Any]) -> None:
    """What the schema cannot say well."""
    url = payload.get("stream_url")
    if url is not None and not _is_ws_url(url):
        raise TelnyxInputError(
            f"body.stream_url must be a ws:// or wss:// URL with a host and no user:password, "
            f"got {_show(url)}. Example: wss://your-server.example.com/media.",
            "body.stream_url",
        )
    state = payload.get("client_state")
    if state is not None:
        try:
            base64.b64decode(state.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            example = base64.b64encode(state.encode()).decode() if len(state) <= 100 else None
            raise TelnyxInputError(
                "body.client_state must be base64 (Telnyx refuses plain text); encode it first"
                + (f", e.g. {example!r}." if example else ".")
                + " Decode it again from data.payload.client_state of later webhooks.",
                "body.client_state",
            ) from None
    if payload.get("stream_bidirectional_mode") != "rtp":
        for key in ("stream_bidirectional_codec", "stream_bidirectional_sampling_rate"):
            if key in payload:
                raise TelnyxInputError(
                    f"body.{key} only applies when stream_bidirectional_mode is 'rtp' (the audio "
                    f"your server sends back would be lost): set stream_bidirectional_mode to "
                    f"'rtp', or remove {key}.",
                    f"body.{key}",
                )


def _check_text(value: Any, field: str) -> None:
    """Every string must encode as UTF-8 (a lone surrogate cannot be sent as JSON)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TelnyxInputError(
                f"{field} contains a lone surrogate character, which JSON cannot carry: remove it.", field
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{field}[{index}]")


def _is_ws_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("ws", "wss") and bool(host) and not (parts.username or parts.password)


def _check_auth(auth: Any) -> str:
    """The API key from the telnyx resource, stripped of the whitespace a paste leaves."""
    fix = "Pick a telnyx resource whose apiKey is your Telnyx API key (it starts with KEY)."
    if not isinstance(auth, Mapping):
        raise TelnyxInputError(f"auth must be a telnyx resource, got {type(auth).__name__}. {fix}", "auth")
    key = auth.get("apiKey")
    if not isinstance(key, str) or not key.strip():
        raise TelnyxInputError(f"auth.apiKey is missing or empty. {fix}", "auth.apiKey")
    key = key.strip()
    if not key.isascii() or not key.isprintable() or " " in key:  # isprintable() refuses other whitespace
        raise TelnyxInputError(
            f"auth.apiKey contains spaces, line breaks or non-ASCII characters (not shown). Copy the key again. {fix}",
            "auth.apiKey",
        )
    return key


def _check_call_control_id(call_control_id: Any) -> str:
    """The id, percent-encoded as ONE path segment: it can never change the path or query."""
    fix = "Pass data.payload.call_control_id of the call.answered webhook, e.g. v3:9X2vxPDF..."
    name = "call_control_id"
    if not isinstance(call_control_id, str) or not call_control_id:
        got = "an empty string" if call_control_id == "" else type(call_control_id).__name__
        raise TelnyxInputError(f"{name} must be a non-empty string, got {got}. {fix}", name)
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
            raise TelnyxInputError(f"{name} must be a number of seconds above 0 and at most 600, got {value!r}.", name)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
        raise TelnyxInputError(f"max_retries must be a whole number from 0 to 10, got {max_retries!r}.", "max_retries")


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
    if secure and host and not (parts.username or parts.password or parts.query or parts.fragment):
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


def _drop_none(value: Any) -> Any:
    """JSON.stringify drops undefined; a Python caller's "unset" is None: drop it at any depth."""
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value if v is not None]
    return value


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
    secret = top == "stream_auth_token"
    got = "" if secret else f", got {_show(error.instance)}"
    kind, expected = error.validator, error.validator_value
    if kind == "enum" or (kind == "type" and "enum" in error.schema):
        fix = "use one of " + ", ".join(json.dumps(v) for v in error.schema["enum"])
    elif kind == "type":
        fix = f"use a JSON {expected}" + (" (true or false)" if expected == "boolean" else "")
    elif kind == "maxLength":
        fix = f"shorten it to at most {expected} characters (it has {len(error.instance)})"
    elif kind == "minLength":
        fix = "leave it out instead of sending an empty string"
    elif kind == "required":
        fix = f"every item needs {' and '.join(expected)} (strings)"
    elif kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        fix = f"remove {', '.join(map(repr, extra))}; allowed: {', '.join(error.schema['properties'])}"
        got = ""
    elif kind == "pattern":
        fix = error.schema.get("customErrorMessage", f"match {expected}")
    else:
        fix = error.message if not secret else kind
    return f"{field} is invalid{got}: {fix}.", field


def _unknown_key_message(key: str) -> str:
    import difflib  # only on this error path: keeps it out of every cold start

    close = difflib.get_close_matches(str(key), list(BODY_FIELDS), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "check the spelling"
    return f"body has an unknown field {_show(key)}: {hint} Fields streaming_start accepts: {', '.join(BODY_FIELDS)}."


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


# ---------------------------------------------------------------------------------------------
# HTTP: one pooled Session per process; urllib3's Retry does the retries, bounded by a deadline.
# ---------------------------------------------------------------------------------------------
class _Call:
    """Per-call state shared by the Retry objects of one call (urllib3 copies them per attempt)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.attempts = 1


class _DeadlineRetry(Retry):
    """urllib3's Retry that never starts an attempt (or a wait) past the call's deadline."""

    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def __init__(self, *args: Any, call: _Call | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call = call

    def new(self, **kwargs: Any) -> _DeadlineRetry:
        return super().new(call=self.call, **kwargs)

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), RETRY_AFTER_CAP_S)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _DeadlineRetry:
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.call is not None:
            wait = (self.respect_retry_after_header and response and new.get_retry_after(response)) or 0
            wait = max(wait, new.get_backoff_time())
            if time.monotonic() + wait + 0.05 >= self.call.deadline:
                reason = error or ResponseError(f"deadline reached after status {getattr(response, 'status', '?')}")
                raise MaxRetryError(_pool, url, reason) from reason
            self.call.attempts += 1
        return new

    def sleep(self, response: Any = None) -> None:
        # increment() only allows a retry whose wait ends before the deadline; this is the backstop.
        if self.call is not None and time.monotonic() >= self.call.deadline:
            return
        super().sleep(response)


class _DeadlineTimeout(Timeout):
    """urllib3's Timeout whose connect and read limits shrink to what is left of the deadline."""

    def __init__(self, deadline: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline

    def clone(self) -> _DeadlineTimeout:
        return _DeadlineTimeout(self.deadline, connect=self._connect, read=self._read, total=self.total)

    def _left(self, limit: Any) -> Any:
        left = max(self.deadline - time.monotonic(), 0.001)
        return left if not isinstance(limit, (int, float)) else min(limit, left)

    @property
    def connect_timeout(self) -> Any:
        return self._left(super().connect_timeout)

    @property
    def read_timeout(self) -> Any:
        return self._left(super().read_timeout)


_RETRY: ContextVar[Retry] = ContextVar("telnyx_streaming_start_retry")


class _Adapter(HTTPAdapter):
    """An HTTPAdapter whose Retry is the current call's (a ContextVar): one pooled Session
    serves calls with different retry settings and deadlines, from any number of threads."""

    @property
    def max_retries(self) -> Retry:
        return _RETRY.get(self._default_retry)

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._default_retry = value


class _Bearer(requests.auth.AuthBase):
    """Sets the Authorization header (and keeps ~/.netrc from replacing it); repr hides the key."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def __repr__(self) -> str:
        return "<Bearer ***>"


_SESSION: requests.Session | None = None
_SESSION_LOCK = threading.Lock()


def _session() -> requests.Session:
    """The process's Session (Windmill's dedicated workers keep the process: connections are reused)."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            session = requests.Session()
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            session.headers["User-Agent"] = (
                f"windmill-telnyx-streaming-start/{__version__} {requests.utils.default_user_agent()}"
            )
            adapter = _Adapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _SESSION = session
        return _SESSION


def _post(
    url: str, payload: Dict[str, Any], api_key: str, timeout_s: float, deadline: float, max_retries: int
) -> StreamingStartResult:
    command_id = payload.get("command_id")
    call = _Call(deadline)
    retry = _DeadlineRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        redirect=0,
        allowed_methods=None,  # every method: POST is safe to repeat with one command_id
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.25,
        backoff_jitter=0.25,
        backoff_max=4.0,
        raise_on_status=False,
        raise_on_redirect=False,
        call=call,
    )
    timeout = _DeadlineTimeout(deadline, connect=min(CONNECT_TIMEOUT_S, timeout_s), read=timeout_s)
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    token = _RETRY.set(retry)
    try:
        with _session().post(
            url,
            data=data,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            auth=_Bearer(api_key),
            timeout=timeout,  # type: ignore[arg-type]  # requests takes a urllib3 Timeout as is
            allow_redirects=False,  # a redirect must never carry the Bearer key to another host
            stream=True,  # read the answer ourselves, up to MAX_RESPONSE_BYTES
        ) as response:
            content = _read_capped(response, command_id, call.attempts)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # the latter: reading the body
        raise TelnyxConnectionError(
            _no_answer_message(exc, call.attempts, command_id, api_key), command_id, call.attempts
        ) from None
    finally:
        _RETRY.reset(token)
    return _result(response, content, command_id, call.attempts, api_key)


def _read_capped(response: requests.Response, command_id: str | None, attempts: int) -> bytes:
    content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
    if len(content) > MAX_RESPONSE_BYTES:
        raise TelnyxConnectionError(
            f"Telnyx's answer (status {response.status_code}) is larger than {MAX_RESPONSE_BYTES} "
            f"bytes and was not read. Check TELNYX_BASE_URL. (command_id={command_id})",
            command_id,
            attempts,
        )
    return content


def _result(
    response: requests.Response, content: bytes, command_id: str | None, attempts: int, api_key: str
) -> StreamingStartResult:
    text = content.decode(response.encoding or "utf-8", errors="replace").replace(api_key, "***")
    parsed: Any = None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        pass
    status = response.status_code
    if 200 <= status < 300 and isinstance(parsed, dict):
        result = StreamingStartResult(parsed)
        result.command_id, result.attempts = command_id, attempts
        return result
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    errors = errors if isinstance(errors, list) else []
    request_id = response.headers.get("x-request-id")
    lines = [f"{status} {text}"]  # the original script's message, exactly
    lines += _hints(status, errors, response, attempts, command_id)
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


def _hints(
    status: int, errors: List[Any], response: requests.Response, attempts: int, command_id: str | None
) -> List[str]:
    hints: List[str] = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        hint = HINTS.get(str(error.get("code")))
        pointer = (error.get("source") or {}).get("pointer") if isinstance(error.get("source"), dict) else None
        if hint is None and pointer:
            field = str(pointer).strip("/").replace("/", ".")
            hint = f"Telnyx refused body field {field}: {error.get('detail') or error.get('title')}"
        if hint and hint not in hints:
            hints.append(hint)
    if 200 <= status < 300:
        hints.append("The answer is not the JSON object Telnyx sends: check TELNYX_BASE_URL.")
    if not hints and status in STATUS_HINTS:
        hints.append(STATUS_HINTS[status])
    if 300 <= status < 400:
        where = urlsplit(response.headers.get("Location", "")).hostname or "elsewhere"
        hints.append(
            f"Telnyx answered with a redirect to {where}; it was not followed, so the API key "
            f"was not sent there. Check TELNYX_BASE_URL."
        )
    if status >= 500 or status in (408, 429):
        hints.append(f"Gave up after {attempts} attempt(s). {_safe_retry(command_id)}")
    return hints


def _safe_retry(command_id: str | None) -> str:
    """How to run the command again without risking a second stream."""
    if command_id is None:
        return "The command may have reached Telnyx; set a command_id before running it again."
    return (
        f"The command may have reached Telnyx: to run it again without risking a second stream, "
        f"pass body.command_id = {command_id!r}."
    )


def _no_answer_message(exc: Exception, attempts: int, command_id: str | None, api_key: str) -> str:
    reason: Any = exc
    while isinstance(reason, Exception) and reason.args and isinstance(reason.args[0], Exception):
        reason = reason.args[0]  # requests wraps urllib3's MaxRetryError, which wraps the cause
    if isinstance(reason, MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    if isinstance(exc, requests.Timeout) or "timed out" in str(reason).lower() or "deadline" in str(reason):
        what = "no answer in time (timeout or deadline)"
        fix = "Telnyx did not answer within timeout_s / deadline_s; raise them or check the network. "
    else:
        what = "could not reach Telnyx"
        fix = "Check the network and TELNYX_BASE_URL. "
    fix += _safe_retry(command_id)
    cause = f"{type(reason).__name__}: {reason}".replace(api_key, "***")
    details = f"(command_id={command_id}, attempts={attempts})"
    cause = cause if len(cause) <= 300 else cause[:297] + "..."
    return f"{what} after {attempts} attempt(s): {cause}\n{fix}\n{details}"


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
        body = _cli_body(args.body, args.body_file)
        result = main(
            {"apiKey": os.environ.get("TELNYX_API_KEY", "")},
            args.call_control_id,
            body,
            timeout_s=args.timeout,
            deadline_s=args.deadline,
            max_retries=args.retries,
        )
    except TelnyxInputError as exc:
        if exc.field.startswith("auth"):
            exc = TelnyxInputError(
                "TELNYX_API_KEY is missing or malformed: export TELNYX_API_KEY=KEY... (your Telnyx API key).",
                exc.field,
            )
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
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise TelnyxInputError(
            f'body is not valid JSON ({exc}). Example: --body \'{{"stream_url": "wss://example.com/media"}}\'',
            "body",
        ) from None


if __name__ == "__main__":
    sys.exit(cli())
