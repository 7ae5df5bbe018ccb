"""Telnyx's side, its state with no HTTP in it: calls, the commands they received, streams, faults.

Every method is safe to call from several threads (the HTTP server answers each request in its
own thread); the media runner (media.py) is told when a stream must start or stop.
"""

from __future__ import annotations

import base64
import binascii
import collections
import secrets
import threading
import time
import uuid
from array import array
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from .exceptions import CallEnded, CallNotAnswered, CallNotFound, InvalidBody, MediaStreamingUsed

# Telnyx's view of the body (what the real API checks, as far as we know): enums and limits.
ENUMS: dict[str, tuple] = {
    "stream_track": ("inbound_track", "outbound_track", "both_tracks"),
    "stream_codec": ("PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16", "default"),
    "stream_bidirectional_mode": ("mp3", "rtp"),
    "stream_bidirectional_codec": ("PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"),
    "stream_bidirectional_sampling_rate": (8000, 16000, 22050, 24000, 48000),
    "stream_bidirectional_target_legs": ("both", "self", "opposite"),
}
STRINGS = ("stream_url", "stream_auth_token", "client_state", "command_id")
BOOLEANS = ("enable_dialogflow",)
OBJECTS = ("custom_parameters", "dialogflow_config")
FIELDS = frozenset(ENUMS) | frozenset(STRINGS) | frozenset(BOOLEANS) | frozenset(OBJECTS)


@dataclass
class Fault:
    """One injected fault, used up by one request.

    kind: ``status`` (answer ``status``, with ``Retry-After: retry_after`` if set), ``reset`` (drop
    the connection with a TCP RST), ``delay`` (answer after ``seconds``), ``redirect`` (302 to
    ``location``). With ``process`` true, a ``reset`` or ``delay`` applies the command first, so
    only its answer is lost or late: the case a retry must not double.
    """

    kind: str
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    location: str = ""
    process: bool = False

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> Fault:
        if spec.get("kind") not in ("status", "reset", "delay", "redirect"):
            raise InvalidBody("fault kind must be status, reset, delay or redirect", "/kind")
        known = {"kind", "status", "retry_after", "seconds", "location", "process"}
        return cls(**{k: v for k, v in spec.items() if k in known})


class Media(Protocol):
    def start(self, stream: Stream) -> None: ...
    def stop(self, stream: Stream) -> None: ...


@dataclass
class Stream:
    stream_id: str
    call: Call
    params: dict[str, Any]
    state: str = "connecting"  # connecting, streaming, stopped, failed
    failure_reason: str | None = None
    codec: str = ""
    sample_rate: int = 0
    frames_sent: collections.Counter = field(default_factory=collections.Counter)
    played: array = field(default_factory=lambda: array("h"))  # bidirectional audio played back
    marks_sent: list[str] = field(default_factory=list)
    # per mark echoed: samples played back between its arrival and its echo (0: echoed at once)
    mark_waits: list[int] = field(default_factory=list)
    errors_sent: list[int] = field(default_factory=list)
    mp3_received: list[bytes] = field(default_factory=list)
    # for the page: the last 20 ms's peak per track (inbound, outbound; "back" = played back), 0 to 1,
    # and marks and clears with their time in seconds from the stream's start
    levels: dict[str, float] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    stopping: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def played_rate(self) -> int:
        """Sample rate of the audio the stream server sends back (Telnyx's default: 8000)."""
        return int(self.params.get("stream_bidirectional_sampling_rate") or 8000)

    def summary(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "state": self.state,
            "failure_reason": self.failure_reason,
            "codec": self.codec,
            "sample_rate": self.sample_rate,
            "frames_sent": dict(self.frames_sent),
            "played_samples": len(self.played),
            "marks_sent": list(self.marks_sent),
            "mark_waits_samples": list(self.mark_waits),
            "errors_sent": list(self.errors_sent),
            "mp3_received": len(self.mp3_received),
            "levels": dict(self.levels),
            "timeline": list(self.timeline),
        }


CALL_STATES = {"call.initiated": "parked", "call.answered": "answered", "call.hangup": "hangup"}


@dataclass
class Call:
    call_control_id: str
    codec: str = "PCMU"
    audio: str | None = None  # WAV file the caller "says"; None: a generated tone sequence
    webhook_url: str | None = None
    duration_s: float | None = None  # how long the caller talks once streaming starts
    state: str = "answered"  # ringing, answered, ended
    call_leg_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    call_session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    command_ids: set[str] = field(default_factory=set)
    commands: int = 0
    streams: list[Stream] = field(default_factory=list)

    @property
    def streams_started(self) -> int:
        return len(self.streams)

    def summary(self) -> dict[str, Any]:
        return {
            "call_control_id": self.call_control_id,
            "state": self.state,
            "codec": self.codec,
            "commands": self.commands,
            "streams_started": self.streams_started,
            "streams": [s.summary() for s in self.streams],
        }


@dataclass
class Recorded:
    """A request as the emulator received it (for tests to assert on)."""

    method: str
    path: str  # raw, as sent (percent-encoding kept)
    headers: dict[str, str]
    body: bytes
    client: tuple = ()  # (host, port) of the connection it came on
    at: float = field(default_factory=time.time)


class Backend:
    def __init__(self, api_key: str, media: Media | None = None, webhooks: Any = None) -> None:
        self.api_key = api_key
        self.media = media
        self.webhooks = webhooks  # a webhooks.Sender, or None
        self.calls: dict[str, Call] = {}
        self.requests: list[Recorded] = []
        self.faults: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.lock = threading.RLock()
        self.narrate: Any = None  # a callable taking one line: what happens, as it happens (python -m emulator)

    def say(self, line: str) -> None:
        if self.narrate is not None:
            self.narrate(f"{time.strftime('%H:%M:%S')} {line}")

    # -- calls -----------------------------------------------------------------------------
    def create_call(self, **options: Any) -> Call:
        call_id = "v3:" + secrets.token_urlsafe(27)
        call = Call(call_control_id=call_id, **options)
        with self.lock:
            self.calls[call_id] = call
        return call

    def call(self, call_id: str) -> Call:
        with self.lock:
            call = self.calls.get(call_id)
        if call is None:
            raise CallNotFound(f"No call with call_control_id {call_id!r}.")
        return call

    def ring(self, **options: Any) -> Call:
        """A new incoming call, ringing: call.initiated goes to its webhook URL."""
        call = self.create_call(state="ringing", **options)
        self.emit(call, "call.initiated")
        return call

    def answer(self, call_id: str) -> Call:
        """The call is answered: call.answered goes to its webhook URL (streams may start from now on)."""
        call = self.call(call_id)
        if call.state == "ended":
            raise CallEnded("Call has already ended.")
        with self.lock:
            call.state = "answered"
        self.emit(call, "call.answered")
        return call

    def hangup(self, call_id: str) -> Call:
        call = self.live_call(call_id)
        with self.lock:
            call.state = "ended"
            streams = list(call.streams)
        self.emit(call, "call.hangup", hangup_cause="normal_clearing", hangup_source="caller")
        for stream in streams:
            self._stop(stream)
        return call

    def live_call(self, call_id: str) -> Call:
        call = self.call(call_id)
        if call.state == "ended":
            raise CallEnded("Call has already ended.")
        if call.state != "answered":
            raise CallNotAnswered("The call must be answered before streaming can start.")
        return call

    # -- commands --------------------------------------------------------------------------
    def streaming_start(self, call_id: str, body: Any) -> Stream | None:
        """Start a stream; None when the command_id was seen before on this call (ignored)."""
        call = self.live_call(call_id)
        check_body(body)
        with self.lock:
            call.commands += 1
            command_id = body.get("command_id")
            if command_id is not None and command_id in call.command_ids:
                return None  # a repeat: Telnyx drops it silently
            running = [s.stream_id for s in call.streams if s.state in ("connecting", "streaming")]
            if running:
                raise MediaStreamingUsed(
                    f"This command can't be issued when media streaming is used: stream {running[0]} is "
                    "already running on this call. Stop it with streaming_stop first, or repeat the first "
                    "start's command_id."
                )
            if command_id is not None:
                call.command_ids.add(command_id)
            stream = Stream(stream_id=str(uuid.uuid4()), call=call, params=dict(body))
            call.streams.append(stream)
        if self.media is not None:
            self.media.start(stream)
        else:
            stream.state = "streaming"
        return stream

    def streaming_stop(self, call_id: str, body: Any) -> None:
        call = self.live_call(call_id)
        stream_id = body.get("stream_id") if isinstance(body, dict) else None
        with self.lock:
            call.commands += 1
            streams = [s for s in call.streams if stream_id in (None, s.stream_id)]
        for stream in streams:
            self._stop(stream)

    def _stop(self, stream: Stream) -> None:
        stream.stopping.set()
        if self.media is not None:
            self.media.stop(stream)
        elif stream.state in ("connecting", "streaming"):
            stream.state = "stopped"

    # -- faults and records ----------------------------------------------------------------
    def add_faults(self, specs: list[dict[str, Any]], call_id: str | None = None) -> None:
        faults = [Fault.parse(spec) for spec in specs]
        with self.lock:
            self.faults[call_id or "*"].extend(faults)

    def next_fault(self, call_id: str | None) -> Fault | None:
        """The call's own faults first, then the ones for any request, in the order given."""
        with self.lock:
            for key in (call_id, "*"):
                queue = self.faults.get(key) if key else None
                if queue:
                    return queue.popleft()
        return None

    def record(self, request: Recorded) -> None:
        with self.lock:
            self.requests.append(request)

    def emit(self, call: Call, event_type: str, **extra: Any) -> dict[str, Any] | None:
        """A call.* or streaming.* webhook to the call's webhook URL, with Telnyx's envelope."""
        if self.webhooks is None:
            return None
        stream = extra.pop("stream", None)
        payload: dict[str, Any] = {
            "call_control_id": call.call_control_id,
            "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id,
            "connection_id": "emulator",
            "client_state": stream.params.get("client_state") if stream else None,
        }
        if event_type.startswith("call."):
            payload.update(
                {
                    "from": "+13125550100",
                    "to": "+13125550199",
                    "direction": "incoming",
                    "state": CALL_STATES[event_type],
                }
            )
        payload.update(extra)
        return self.webhooks.send(call.webhook_url, event_type, payload)


def check_body(body: Any) -> None:
    """422 for what Telnyx would refuse, with source.pointer naming the field."""
    if not isinstance(body, dict):
        raise InvalidBody("The request body must be a JSON object.")
    for key, value in body.items():
        pointer = f"/{key}"
        if key not in FIELDS:
            raise InvalidBody(f"Unknown parameter {key}.", pointer)
        if key in ENUMS and value not in ENUMS[key]:
            raise InvalidBody(f"{key} must be one of {', '.join(map(str, ENUMS[key]))}.", pointer)
        if key in STRINGS and not isinstance(value, str):
            raise InvalidBody(f"{key} must be a string.", pointer)
        if key in BOOLEANS and not isinstance(value, bool):
            raise InvalidBody(f"{key} must be a boolean.", pointer)
    url = body.get("stream_url")
    if url is not None and urlsplit(url).scheme not in ("ws", "wss"):
        raise InvalidBody("stream_url must be a WebSocket URL (wss://...).", "/stream_url")
    if len(body.get("stream_auth_token") or "") > 4000:
        raise InvalidBody("stream_auth_token is longer than 4000 characters.", "/stream_auth_token")
    if body.get("client_state") is not None:
        try:
            base64.b64decode(body["client_state"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidBody("client_state must be base64.", "/client_state") from None
    params = body.get("custom_parameters")
    if params is not None and not (
        isinstance(params, list)
        and all(
            isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("value"), str) for p in params
        )
    ):
        raise InvalidBody("custom_parameters must be a list of {name, value} strings.", "/custom_parameters")
