"""Telnyx's side, the media stream: the emulator connects to ``stream_url`` as Telnyx does and streams real audio.

Frames follow Telnyx's media streaming docs (developers.telnyx.com, "Media Streaming"): ``connected``,
``start``, ``media`` every 20 ms per track (real time, or as fast as the socket takes them with ``fast``), ``stop``.
With ``stream_bidirectional_mode`` rtp, the server's ``media`` / ``mark`` / ``clear`` frames are
played back in real time; a bad frame gets Telnyx's ``error`` frame. What Telnyx would NOT do with what
the server sends (media on a stream that is not rtp, a codec that does not fit) is said once a stream,
in the log, the stream's summary and the page (``Stream.warnings``). Nothing the stream server does
(refusing, closing early, not reading) can crash the emulator: it shows as streaming.failed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import threading
import time
from array import array
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

import audio_codecs as audio  # the codecs, shared with the example server

from .codec_check import CodecCheck
from .models import Backend, Notice, Stream
from .playback import Mark, Playback

log = logging.getLogger("emulator.media")

CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 2.0  # a stream server that stops reading for this long fails the stream
CLOSE_GRACE_S = 3.0  # after a send timed out: time for a server that is closing to finish closing
OUTBOUND_NOTES = (330, 392, 494, 587)  # what the call plays to the caller, unlike the caller's tones
DEFAULT_SECONDS = 6.0
TONE_CYCLE_S = 1.2  # one pass of the four notes of audio.tones
TRACKS = {
    "inbound_track": ("inbound",),
    "outbound_track": ("outbound",),
    "both_tracks": ("inbound", "outbound"),
}
# What Telnyx does with the frames a stream server sends, by stream_bidirectional_mode. Its media streaming
# AsyncAPI page (developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket, "Bidirectional
# Media"): bidirectional streaming is enabled by setting the mode to rtp for RTP payloads, or by sending base64
# MP3 frames, which "are queued and played in submission order, with a one-message-per-second rate limit";
# the API spec's default mode is mp3 (its streaming_start and answer references), and
# stream_bidirectional_codec is "used only with" rtp (the TeXML <Stream> reference). So:
# - rtp: media is raw audio in stream_bidirectional_codec, played; marks and clears act on it.
# - mp3: media must be an MP3 file, at most one a second (100005 beyond); raw audio is never played.
# - not set: NOT documented. A public report (deepgram/deepclaw, issue 6 and its fix, PR 8) found that Telnyx
#   drops what the server sends on such a stream, with no error. The emulator chooses the same: nothing is
#   played, echoed or answered, no error frame is sent, and the user is told once per stream.
NOT_PLAYED = {
    None: "Telnyx plays them only with stream_bidirectional_mode rtp (this stream has none): the caller "
    "heard none of them",
    "mp3": "they are not MP3 files, and with stream_bidirectional_mode mp3 Telnyx plays MP3 files only: the "
    "caller heard none of them; raw audio plays with stream_bidirectional_mode rtp",
}
NOT_BIDIRECTIONAL = {
    "mark": "Telnyx answers marks only on a bidirectional stream (stream_bidirectional_mode rtp; this stream "
    "has none): none was echoed",
    "clear": "Telnyx clears only on a bidirectional stream (stream_bidirectional_mode rtp; this stream has "
    "none): nothing was cleared",
}
# A server that closes an L16 stream at once most likely cannot decode L16 (Telnyx would only see the close)
L16_REFUSED_WITHIN = 10  # media frames: 0.2 s of audio
L16_REFUSED = (
    "your server closed the stream after {frames} of L16 audio (start.media_format): a server that cannot "
    "decode L16 does that; pipecat 1.14's TelnyxFrameSerializer refuses it ('Unsupported encoding: L16'). "
    "Leave stream_codec unset (the call's PCMU or PCMA) or set PCMU"
)
ERRORS = {
    100002: "unknown_error",
    100003: "malformed_frame",
    100004: "invalid_media",
    100005: "rate_limit_reached",
}


class MediaRunner:
    """Runs every stream on one asyncio loop in a background thread."""

    def __init__(self, backend: Backend, fast: bool = False, record_dir: str | Path | None = None) -> None:
        self.backend = backend
        self.fast = fast
        self.record_dir = Path(record_dir) if record_dir else None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="emulator-media", daemon=True)
        self._futures: list[Future] = []
        self._thread.start()

    def start(self, stream: Stream) -> None:
        future = asyncio.run_coroutine_threadsafe(self._run(stream), self.loop)
        self._futures.append(future)

    def stop(self, stream: Stream) -> None:
        stream.stopping.set()  # the stream's loop sees it within one frame (20 ms)

    def close(self, timeout: float = 5.0) -> None:
        for stream in [s for c in list(self.backend.calls.values()) for s in c.streams]:
            stream.stopping.set()
        deadline = time.monotonic() + timeout
        for future in list(self._futures):
            with contextlib.suppress(Exception):
                future.result(max(deadline - time.monotonic(), 0.01))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    # -- one stream ------------------------------------------------------------------------
    async def _run(self, stream: Stream) -> None:
        try:
            await _Session(self, stream).run()
        except Exception:  # never let one stream take the emulator down
            log.exception("stream %s crashed", stream.stream_id)
            stream.state, stream.failure_reason = "failed", "emulator_error"
        finally:
            stream.done.set()
            if self.record_dir and len(stream.played):
                self.record_dir.mkdir(parents=True, exist_ok=True)
                audio.write_wav(self.record_dir / f"played-{stream.stream_id}.wav", stream.played, stream.played_rate)


class _Session:
    """One WebSocket stream, from connect to stop."""

    def __init__(self, runner: MediaRunner, stream: Stream) -> None:
        self.runner, self.stream, self.call = runner, stream, stream.call
        self.backend = runner.backend
        params = stream.params
        self.url = params.get("stream_url")
        self.tracks = TRACKS[params.get("stream_track", "inbound_track")]
        self.codec = _stream_codec(params.get("stream_codec"), self.call.codec)
        self.rate = audio.SAMPLE_RATES[self.codec]
        self.mode = params.get("stream_bidirectional_mode")
        self.back_codec = params.get("stream_bidirectional_codec", "PCMU")
        self.playback = Playback(stream.played_rate, stream.played)  # what the server sends back
        self.codec_check = CodecCheck(self.back_codec)  # does what it sends fit stream_bidirectional_codec?
        self.sequence = 0
        self.send_lock = asyncio.Lock()
        self.last_mp3 = -math.inf
        stream.codec, stream.sample_rate = self.codec, self.rate
        self.name = f"stream {stream.stream_id[:8]}"
        requested = params.get("stream_codec")
        if requested not in (None, "default", self.codec):
            # Telnyx's spec: "when transcoding is not possible, the codec from the call will be used";
            # the emulator encodes PCMU, PCMA and L16 only, and says so instead of switching silently
            self.backend.say(
                f"{self.name}: stream_codec {requested} is not encoded here: sending the call's codec "
                f"{self.codec}, as Telnyx does when it cannot transcode (see media_format in the start frame)"
            )

    async def run(self) -> None:
        stream = self.stream
        if not self.url:  # Dialogflow streams have no socket here; they just run until stopped
            stream.state = "streaming"
            self.backend.emit(self.call, "streaming.started", stream=stream)
            await self._wait_stopped()
            return self._stopped()
        sources = self._sources()
        self.backend.say(f"{self.name}: connecting to {self.url} ({self.codec}, {', '.join(self.tracks)})")
        headers = {}
        if stream.params.get("stream_auth_token"):
            headers["x-telnyx-streaming-auth-token"] = stream.params["stream_auth_token"]
        try:
            ws = await asyncio.wait_for(
                connect(
                    self.url,
                    additional_headers=headers,
                    user_agent_header="Telnyx-Media-Emulator",
                    open_timeout=None,
                    ping_interval=None,
                    max_size=1 << 24,
                    close_timeout=2,
                ),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, asyncio.TimeoutError, WebSocketException, ValueError) as exc:
            return self._failed("connection_failed", exc)
        stream.state = "streaming"
        self.backend.say(f"{self.name}: connected")
        self.backend.emit(self.call, "streaming.started", stream=stream, stream_url=self.url)
        reader = asyncio.create_task(self._read(ws))
        try:
            finished = await self._stream(ws, sources)
            await self._send(ws, {"event": "stop", "stop": self._ids()})
            await ws.close()
        except asyncio.TimeoutError as exc:  # before OSError: TimeoutError is one since Python 3.11
            # A send blocked until the timeout: either the server stopped reading, or it closed the
            # connection while the send was blocked (on a loaded machine the close is noticed late).
            closing = await self._closes(ws)
            return self._failed("connection_closed" if closing else "slow_consumer", exc)
        except (ConnectionClosed, OSError) as exc:
            return self._failed("connection_closed", exc)
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        self._stopped()
        if finished:  # the caller stopped talking: hang up, as a real caller would
            with contextlib.suppress(Exception):
                self.backend.hangup(self.call.call_control_id, by="caller", why="the caller's audio ended (--duration)")

    async def _stream(self, ws: ClientConnection, sources: dict[str, array]) -> bool:
        """Send connected, start and the media frames; True when the audio ran out (not stopped)."""
        stream = self.stream
        connected: dict[str, Any] = {"event": "connected", "version": "1.0.0"}
        if stream.params.get("stream_auth_token"):
            connected["connected"] = {"x-telnyx-streaming-auth-token": stream.params["stream_auth_token"]}
        await self._send(ws, connected, numbered=False)
        await self._send(ws, {"event": "start", "start": self._start_info()})
        loop = asyncio.get_running_loop()
        began = loop.time()
        size = self.rate * audio.FRAME_MS // 1000
        count = math.ceil(len(sources["inbound"]) / size)
        for index in range(count):
            if stream.stopping.is_set():
                return False
            for track in self.tracks:
                frame = sources[track][index * size : (index + 1) * size]
                frame.extend([0] * (size - len(frame)))  # the last frame, padded with silence
                media = {
                    "track": track,
                    "chunk": str(index + 1),
                    "timestamp": str(index * audio.FRAME_MS),
                    "payload": base64.b64encode(audio.encode(frame, self.codec)).decode(),
                }
                await self._send(ws, {"event": "media", "media": media})
                stream.frames_sent[track] += 1
                stream.levels[track] = max(max(frame), -min(frame)) / 32768  # (C builtins: no cost to the pace)
            await self._play(ws)
            if self.runner.fast:
                await asyncio.sleep(0)
            else:  # pace against the start time, so delays never add up
                await asyncio.sleep(max(began + (index + 1) * audio.FRAME_MS / 1000 - loop.time(), 0))
        return not stream.stopping.is_set()

    def _sources(self) -> dict[str, array]:
        """Each track's audio for the whole stream. Tones are made for one cycle and repeated, and
        nothing is encoded here: the loop encodes each 20 ms frame as it goes (start stays fast)."""
        call = self.call
        inbound = audio.read_wav(call.audio, self.rate) if call.audio else None
        seconds = call.duration_s
        if seconds is None:
            seconds = len(inbound) / self.rate if inbound is not None else DEFAULT_SECONDS
        total = int(seconds * self.rate)
        cycle = min(seconds, TONE_CYCLE_S)
        if inbound is None:
            inbound = audio.tones(self.rate, cycle)
        outbound = audio.tones(self.rate, cycle, OUTBOUND_NOTES)
        listening = array("h", [0] * int(call.listen_s * self.rate))  # the caller waits, silent, first
        inbound = listening + _loop_to(inbound, total)
        return {"inbound": inbound, "outbound": _loop_to(outbound, len(inbound))}

    def _start_info(self) -> dict[str, Any]:
        params, call = self.stream.params, self.call
        info: dict[str, Any] = {
            "user_id": "00000000-0000-4000-8000-000000000000",
            "call_control_id": call.call_control_id,
            "call_session_id": call.call_session_id,
            "from": "+13125550100",
            "to": "+13125550199",
            "tags": [],
            "custom_parameters": {p["name"]: p["value"] for p in params.get("custom_parameters", [])},
            "media_format": {"encoding": self.codec, "sample_rate": self.rate, "channels": 1},
        }
        if params.get("client_state") is not None:
            info["client_state"] = params["client_state"]
        return info

    def _ids(self) -> dict[str, str]:
        return {
            "user_id": "00000000-0000-4000-8000-000000000000",
            "call_control_id": self.call.call_control_id,
        }

    @staticmethod
    async def _closes(ws: ClientConnection) -> bool:
        """True if the server closed the connection (or finishes closing it within CLOSE_GRACE_S)."""
        try:
            await asyncio.wait_for(ws.wait_closed(), CLOSE_GRACE_S)
            return True
        except asyncio.TimeoutError:
            return ws.protocol.close_rcvd is not None  # the close frame arrived; the closing handshake lags

    async def _send(self, ws: ClientConnection, frame: dict[str, Any], numbered: bool = True) -> None:
        async with self.send_lock:
            if numbered:
                self.sequence += 1
                frame = {"event": frame["event"], "sequence_number": str(self.sequence), **frame}
            if frame["event"] not in ("connected",):
                frame["stream_id"] = self.stream.stream_id
            await asyncio.wait_for(ws.send(json.dumps(frame)), SEND_TIMEOUT_S)

    # -- bidirectional ---------------------------------------------------------------------
    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.TimeoutError, OSError):
            async for message in ws:
                if self.mode in ("rtp", "mp3"):
                    await self._handle(ws, message)
                else:  # not bidirectional: dropped, no error (see NOT_PLAYED), but the user is told
                    self._not_bidirectional(message)

    def _not_bidirectional(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            frame = None
        event = frame.get("event") if isinstance(frame, dict) else None
        self.stream.received[event if event in ("media", "mark", "clear") else "other"] += 1
        if event == "media":
            self._ignored("media", NOT_PLAYED[None])
        elif event in NOT_BIDIRECTIONAL:
            self._ignored(event, NOT_BIDIRECTIONAL[event])

    def _ignored(self, event: str, why: str) -> None:
        """One more ``event`` frame Telnyx would not act on; said the first time only."""
        self.stream.ignored[event] += 1
        self._warn(event, Notice(event, why))

    def _warn(self, kind: str, notice: Notice) -> None:
        """Tell the user, once per stream and kind: the log now, the summary and the page from now on."""
        if kind in self.stream.warnings:
            return
        self.stream.warnings[kind] = notice
        self.backend.say(f"!! {self.name}: {notice.said()}")

    async def _handle(self, ws: ClientConnection, message: str | bytes) -> None:
        try:
            frame = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            return await self._error(ws, 100003, "not a JSON object")
        event = frame.get("event")
        self.stream.received[event if event in ("media", "mark", "clear") else "other"] += 1
        if event == "media":
            payload = (frame.get("media") or {}).get("payload") if isinstance(frame.get("media"), dict) else None
            if not isinstance(payload, str):
                return await self._error(ws, 100003, "media frame without media.payload")
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return await self._error(ws, 100004, "media.payload is not base64")
            return await self._queue_audio(ws, data)
        if event == "mark":
            name = (frame.get("mark") or {}).get("name") if isinstance(frame.get("mark"), dict) else None
            if not isinstance(name, str):
                return await self._error(ws, 100003, "mark frame without mark.name")
            for due in self.playback.mark(name):
                await self._mark(ws, due)
            return None
        if event == "clear":
            dropped, released = self.playback.clear()
            self.backend.say(f"{self.name}: clear ({dropped} queued items dropped)")
            self._timeline("clear", f"{dropped} queued items dropped")
            for mark in released:
                await self._mark(ws, mark)
            return None
        return await self._error(ws, 100003, f"unknown event {str(event)[:40]!r} (expected media, mark, clear)")

    async def _queue_audio(self, ws: ClientConnection, data: bytes) -> None:
        if self.mode == "mp3":
            mp3 = _looks_like_mp3(data)
            if not mp3:  # raw audio, e.g. from a bot made for rtp
                self._ignored("media", NOT_PLAYED["mp3"])
            now = time.monotonic()
            if now - self.last_mp3 < 1.0:
                return await self._error(ws, 100005, "at most one mp3 media frame a second")
            self.last_mp3 = now
            if mp3:
                self.stream.mp3_received.append(data)
            return None
        if self.back_codec not in audio.SAMPLE_RATES:  # G722, OPUS, AMR-WB: kept, not decoded
            return None
        try:
            samples = audio.decode(data, self.back_codec)
        except ValueError as exc:
            return await self._error(ws, 100004, str(exc))
        self.playback.audio(samples)
        sent = self.codec_check.add(data)
        if sent is not None:
            self._warn("codec", Notice("", self._codec_mismatch(sent)))
        return None

    def _codec_mismatch(self, sent: str) -> str:
        told = (
            ", the codec it receives (start.media_format)"
            if sent == self.codec
            else f" (it receives {self.codec}, start.media_format)"
        )
        return (
            f"your server sends {sent} audio{told}, but Telnyx plays it as {self.back_codec} "
            f"(stream_bidirectional_codec): the caller hears noise; set stream_bidirectional_codec to "
            f"{sent}, or send {self.back_codec}"
        )

    async def _play(self, ws: ClientConnection) -> None:
        """Play 20 ms of what the server sent back; echo the marks it reached."""
        before = len(self.stream.played)
        for mark in self.playback.tick(audio.FRAME_MS):
            await self._mark(ws, mark)
        played = self.stream.played[before:]
        self.stream.levels["back"] = max(max(played), -min(played)) / 32768 if played else 0.0

    async def _mark(self, ws: ClientConnection, mark: Mark) -> None:
        await self._send(ws, {"event": "mark", "mark": {"name": str(mark)}})
        self.backend.say(f"{self.name}: mark {str(mark)[:40]!r} echoed")
        self._timeline("mark", str(mark)[:80])
        self.stream.marks_sent.append(str(mark))
        self.stream.mark_waits.append(len(self.stream.played) - mark.played_before)

    def _timeline(self, kind: str, detail: str) -> None:
        at = round(time.monotonic() - self.stream.started_at, 3)
        played = round(len(self.stream.played) / self.stream.played_rate, 3)  # the caller had heard this much
        self.stream.timeline.append({"at": at, "kind": kind, "detail": detail, "played_s": played})

    async def _error(self, ws: ClientConnection, code: int, detail: str) -> None:
        self.stream.errors_sent.append(code)
        await self._send(
            ws, {"event": "error", "payload": {"code": code, "title": ERRORS[code], "detail": detail}}, False
        )

    # -- endings ---------------------------------------------------------------------------
    async def _wait_stopped(self) -> None:
        while not self.stream.stopping.is_set():
            await asyncio.sleep(0.02)

    def _stopped(self) -> None:
        self.stream.state = "stopped"
        frames = ", ".join(f"{track} {count} frames" for track, count in sorted(self.stream.frames_sent.items()))
        ignored = ", ".join(f"{count} {event}" for event, count in sorted(self.stream.ignored.items()))
        self.backend.say(
            f"{self.name}: stopped ({frames or 'no frames'}, {len(self.stream.played)} samples played back"
            + (f"; not acted on, as said above: {ignored}" if ignored else "")
            + ")"
        )
        self.backend.emit(self.call, "streaming.stopped", stream=self.stream, stream_id=self.stream.stream_id)

    def _failed(self, reason: str, exc: BaseException) -> None:
        stream = self.stream
        stream.state, stream.failure_reason = "failed", reason
        log.info("stream %s failed: %s (%s)", stream.stream_id, reason, exc)
        self.backend.say(f"!! {self.name}: STREAM FAILED: {reason} ({type(exc).__name__}: {str(exc)[:120]})")
        sent = sum(stream.frames_sent.values())
        if reason == "connection_closed" and self.codec == "L16" and sent <= L16_REFUSED_WITHIN:
            self._warn("l16", Notice("", L16_REFUSED.format(frames=f"{sent} media frame{'' if sent == 1 else 's'}")))
        self.backend.emit(
            self.call,
            "streaming.failed",
            stream=stream,
            failure_reason=reason,
            stream_id=stream.stream_id,
            stream_type="websocket",
            stream_params={
                "stream_url": self.url,
                "track": stream.params.get("stream_track", "inbound_track"),
            },
        )


def _looks_like_mp3(data: bytes) -> bool:
    """An MP3 file starts with an ID3 tag or an MPEG audio frame header: the sync word (11 bits set), then a
    version, layer, bitrate and sample rate that are not reserved (G.711 silence, all 0xFF, is not one)."""
    if data[:3] == b"ID3":
        return True
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return False
    version, layer, bitrate, rate = (data[1] >> 3) & 3, (data[1] >> 1) & 3, data[2] >> 4, (data[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate != 0xF and rate != 3


def _stream_codec(requested: str | None, call_codec: str) -> str:
    """The codec sent: the one asked for when the emulator can encode it, else the call's."""
    if requested in audio.SAMPLE_RATES:
        return requested
    return call_codec  # "default", or G722 / OPUS / AMR-WB (not encoded here)


def _loop_to(samples: array, total: int) -> array:
    if not samples:
        return array("h", [0] * total)
    out = array("h")
    while len(out) < total:
        out.extend(samples[: total - len(out)])
    return out
