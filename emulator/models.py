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

from .exceptions import (
    CallAlreadyAnswered,
    CallEnded,
    CallNotAnswered,
    CallNotFound,
    InvalidBody,
    MediaStreamingUsed,
    NotAnswerable,
)

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
COMMAND_ID_WINDOW_S = 60.0  # Telnyx: "Commands with duplicate command_ids within 60 seconds will be ignored"
RING_TIMEOUT_S = 30.0  # an incoming call nobody answers ends then (call.hangup, cause timeout)
BOOLEANS = ("enable_dialogflow",)
OBJECTS = ("custom_parameters", "dialogflow_config")
FIELDS = frozenset(ENUMS) | frozenset(STRINGS) | frozenset(BOOLEANS) | frozenset(OBJECTS)
# answer's body (Telnyx's answer spec): streaming_start's stream fields but those it lacks start a
# stream with the answer; its other fields are accepted and not acted out by the emulator
NOT_IN_ANSWER = {"stream_bidirectional_sampling_rate", "stream_auth_token", "custom_parameters", "enable_dialogflow"}
ANSWER_STREAM_FIELDS = sorted(f for f in FIELDS if f.startswith("stream_") and f not in NOT_IN_ANSWER)
ANSWER_FIELDS = frozenset(ANSWER_STREAM_FIELDS) | {
    "client_state",
    "command_id",
    "billing_group_id",
    "custom_headers",
    "preferred_codecs",
    "record",
    "record_channels",
    "record_format",
    "record_max_length",
    "record_timeout_secs",
    "record_track",
    "record_trim",
    "record_custom_file_name",
    "send_silence_when_idle",
    "sip_headers",
    "sound_modifications",
    "transcription",
    "transcription_config",
    "webhook_url",
    "webhook_url_method",
}


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


@dataclass
class Notice:
    """What Telnyx would do with what a stream server sent, said once a stream. ``event``: the frames it
    counts (``Stream.ignored[event]``), or "" for a warning with no count (a codec that does not fit)."""

    event: str
    text: str  # after "your server sent N <event> frames; ", or the whole warning when event is ""

    def render(self, counts: collections.Counter | dict[str, int]) -> str:
        """The words the summary and the page show, with the count so far."""
        if not self.event:
            return self.text
        count = counts.get(self.event, 0)
        return f"your server sent {count} {self.event} frame{'' if count == 1 else 's'}; {self.text}"

    def said(self) -> str:
        """The words the log says, once, when the first such frame arrives (no count yet)."""
        return f"your server sends {self.event} frames; {self.text}" if self.event else self.text


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
    # what your server sent, by event (media, mark, clear, other), and of those the frames Telnyx would
    # not act on (media not played, marks not echoed, clears that clear nothing: see media.py)
    received: collections.Counter = field(default_factory=collections.Counter)
    ignored: collections.Counter = field(default_factory=collections.Counter)
    # what Telnyx would do with what your server sent, in words, once per kind (media.py says each once)
    warnings: dict[str, Notice] = field(default_factory=dict)
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
            "received": dict(self.received),
            "ignored": dict(self.ignored),
            "warnings": [w.render(self.ignored) for w in self.warnings.values()],
            "levels": dict(self.levels),
            "timeline": list(self.timeline),
        }


# payload.state per event; call.initiated: "parked" (incoming, until answered) or "bridging" (outgoing)
CALL_STATES = {"call.answered": "answered", "call.hangup": "hangup"}


@dataclass
class Call:
    call_control_id: str
    codec: str = "PCMU"
    audio: str | None = None  # WAV file the caller "says"; None: a generated tone sequence
    webhook_url: str | None = None
    duration_s: float | None = None  # how long the caller talks once streaming starts
    listen_s: float = 0.0  # the caller first listens (silent) this long: a bot's greeting can play
    state: str = "answered"  # ringing, answered, ended
    direction: str = "incoming"  # incoming: answered by the application's answer; outgoing: by the callee
    client_state: str | None = None  # the last command's client_state, carried in every later webhook
    ended_why: str = ""  # for the page: who or what ended the call
    call_leg_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    call_session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    command_ids: dict[str, float] = field(default_factory=dict)  # command_id -> when it was first seen
    commands: int = 0
    streams: list[Stream] = field(default_factory=list)

    @property
    def streams_started(self) -> int:
        return len(self.streams)

    def summary(self) -> dict[str, Any]:
        return {
            "call_control_id": self.call_control_id,
            "state": self.state,
            "direction": self.direction,
            "ended_why": self.ended_why,
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
        # what a call made from the page or POST /_emulator/calls gets unless its body says otherwise:
        # python -m emulator's --codec, --audio, --duration, --listen, --webhook-url, as its own calls
        self.call_defaults: dict[str, Any] = {}

    def say(self, line: str) -> None:
        if self.narrate is not None:
            self.narrate(f"{time.strftime('%H:%M:%S')} {line}")

    # -- calls -----------------------------------------------------------------------------
    def create_call(self, call_control_id: str | None = None, **options: Any) -> Call:
        call_id = call_control_id or "v3:" + secrets.token_urlsafe(27)
        call = Call(call_control_id=call_id, **options)
        with self.lock:
            if call_id in self.calls:
                raise InvalidBody(f"a call {call_id!r} exists already", "/call_control_id")
            self.calls[call_id] = call
        return call

    def call(self, call_id: str) -> Call:
        with self.lock:
            call = self.calls.get(call_id)
        if call is None:
            raise CallNotFound(f"No call with call_control_id {call_id!r}.")
        return call

    def ring(
        self,
        direction: str = "incoming",
        ring_timeout_s: float = RING_TIMEOUT_S,
        pickup_after_s: float | None = None,
        **options: Any,
    ) -> Call:
        """A new call, ringing; call.initiated goes to its webhook URL. An incoming call is parked until
        the application's ``answer`` command (Telnyx's API), and ends with call.hangup (cause timeout)
        when none comes within ``ring_timeout_s``. An outgoing call (dialled by the application) is
        answered by the callee: ``pick_up``, or by itself after ``pickup_after_s``."""
        if direction not in ("incoming", "outgoing"):
            raise InvalidBody("direction must be incoming or outgoing", "/direction")
        call = self.create_call(state="ringing", direction=direction, **options)
        self.emit(call, "call.initiated")
        later = (ring_timeout_s, self._ring_out) if direction == "incoming" else (pickup_after_s, self.pick_up)
        if later[0] is not None:
            timer = threading.Timer(later[0], later[1], args=(call.call_control_id,))
            timer.daemon = True
            timer.start()
        return call

    def pick_up(self, call_id: str) -> Call:
        """The callee of an outgoing call answers: call.answered goes to its webhook URL."""
        call = self.call(call_id)
        with self.lock:
            if call.direction != "outgoing":
                raise NotAnswerable(
                    "An incoming call is answered by your application's answer command "
                    f"(POST /v2/calls/{call_id}/actions/answer), not by the emulator."
                )
            if call.state != "ringing":
                return call  # already answered or ended: the callee's phone has stopped ringing
            call.state = "answered"
        self.emit(call, "call.answered")
        return call

    def _ring_out(self, call_id: str) -> None:
        call = self.call(call_id)
        with self.lock:
            if call.state != "ringing":
                return
            call.state, call.ended_why = "ended", "nobody answered it: it rang out (call.hangup, cause timeout)"
        self.say(f"call {call_id}: nobody answered, it rang out")
        self.emit(call, "call.hangup", hangup_cause="timeout", hangup_source="unknown")

    def hangup(self, call_id: str, by: str = "caller", why: str = "") -> Call:
        """The call ends: call.hangup, its streams stop. ``by`` is Telnyx's hangup_source; ``why`` the
        page's words for it."""
        call = self.call(call_id)
        with self.lock:
            if call.state == "ended":
                raise CallEnded("Call has already ended.")
            ringing = call.state == "ringing"
            call.state = "ended"
            call.ended_why = (why or f"hung up by the {by}") + (" while it rang" if ringing else "")
            streams = list(call.streams)
        cause = "originator_cancel" if ringing else "normal_clearing"
        self.emit(call, "call.hangup", hangup_cause=cause, hangup_source=by)
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
    def _repeated(self, call: Call, body: dict[str, Any]) -> bool:
        """True when the body's command_id was seen on this call within the last 60 s (Telnyx ignores
        it); otherwise it is remembered from now. Call with the lock held."""
        command_id = body.get("command_id")
        if command_id is None:
            return False
        now = time.monotonic()
        first = call.command_ids.get(command_id)
        if first is not None and now - first < COMMAND_ID_WINDOW_S:
            return True
        call.command_ids[command_id] = now
        return False

    def answer(self, call_id: str, body: Any) -> Stream | None:
        """Telnyx's answer: an incoming, ringing call is answered (call.answered), its client_state kept
        for later webhooks, and with stream_url its stream starts at once. A repeated command_id (60 s)
        is ignored."""
        call = self.call(call_id)
        check_answer_body(body)
        with self.lock:
            call.commands += 1
            if call.state == "ended":
                raise CallEnded("Call has already ended.")
            if self._repeated(call, body):
                return None
            if call.direction != "incoming":
                raise NotAnswerable("An outgoing call is answered by the callee, not by the answer command.")
            if call.state != "ringing":
                raise CallAlreadyAnswered("The call has already been answered.")
            call.state = "answered"
            if body.get("client_state") is not None:
                call.client_state = body["client_state"]
        self.emit(call, "call.answered")
        if body.get("stream_url") is None:
            return None
        params = {k: body[k] for k in (*ANSWER_STREAM_FIELDS, "client_state") if body.get(k) is not None}
        return self._start_stream(call, params)

    def streaming_start(self, call_id: str, body: Any) -> Stream | None:
        """Start a stream; None when the command_id was seen on this call in the last 60 s (ignored)."""
        call = self.live_call(call_id)
        check_body(body)
        with self.lock:
            call.commands += 1
            if self._repeated(call, body):
                return None  # a repeat: Telnyx drops it silently
            running = [s.stream_id for s in call.streams if s.state in ("connecting", "streaming")]
            if running:
                raise MediaStreamingUsed(
                    f"This command can't be issued when media streaming is used: stream {running[0]} is "
                    "already running on this call. Stop it with streaming_stop first, or repeat the first "
                    "start's command_id."
                )
            if body.get("client_state") is not None:
                call.client_state = body["client_state"]
        return self._start_stream(call, dict(body))

    def _start_stream(self, call: Call, params: dict[str, Any]) -> Stream:
        stream = Stream(stream_id=str(uuid.uuid4()), call=call, params=params)
        with self.lock:
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
            "client_state": (stream.params.get("client_state") if stream else None) or call.client_state,
        }
        if event_type.startswith("call."):
            caller, callee = "+13125550100", "+13125550199"
            parked = "parked" if call.direction == "incoming" else "bridging"
            payload.update(
                {
                    "from": caller if call.direction == "incoming" else callee,
                    "to": callee if call.direction == "incoming" else caller,
                    "direction": call.direction,
                    "state": CALL_STATES.get(event_type, parked),
                }
            )
        payload.update(extra)
        return self.webhooks.send(call.webhook_url, event_type, payload)


def check_answer_body(body: Any) -> None:
    """422 for what Telnyx would refuse in an answer: unknown fields, and the stream fields as in check_body."""
    if not isinstance(body, dict):
        raise InvalidBody("The request body must be a JSON object.")
    for key in body:
        if key not in ANSWER_FIELDS:
            raise InvalidBody(f"Unknown parameter {key}.", f"/{key}")
    check_body({k: v for k, v in body.items() if k in FIELDS})


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
