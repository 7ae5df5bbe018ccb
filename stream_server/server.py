"""YOUR side, not Telnyx's: an example stream server, checking Telnyx's frames, a WAV per track.

    python -m stream_server --port 8765 --out out/ [--talk]

Each stream's frames are checked against Telnyx's media streaming docs (developers.telnyx.com,
"Media Streaming"):
``connected`` first, then ``start``, ``media`` frames, ``stop`` last; sequence numbers rising;
chunks per track counted for gaps and out-of-order arrivals. Payloads are decoded with the codec
of ``start.media_format`` and written to ``<out>/<stream_id>-<track>.wav``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import errno
import json
import statistics
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import audio_codecs as audio  # the codecs (G.711, L16, WAV), shared with the emulator


@dataclass
class StreamReport:
    """What one stream delivered, and what was wrong with it."""

    stream_id: str = ""
    token_header: str | None = None
    events: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    start: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    media: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)  # track -> (chunk, payload)
    arrivals: dict[str, list[float]] = field(default_factory=dict)  # track -> monotonic seconds
    out_of_order: int = 0
    last_sequence: int | None = None
    wavs: dict[str, str] = field(default_factory=dict)
    done: bool = False

    @property
    def codec(self) -> str:
        return self.start.get("media_format", {}).get("encoding", "")

    @property
    def sample_rate(self) -> int:
        return int(self.start.get("media_format", {}).get("sample_rate") or 8000)

    def samples(self, track: str) -> array:
        """The track's audio, in chunk order."""
        out = array("h")
        for _, payload in sorted(self.media.get(track, [])):
            out.extend(audio.decode(payload, self.codec))
        return out

    def dropped(self, track: str) -> int:
        chunks = sorted(c for c, _ in self.media.get(track, []))
        return (chunks[-1] - chunks[0] + 1 - len(chunks)) if chunks else 0

    def gaps_ms(self, track: str) -> list[float]:
        times = self.arrivals.get(track, [])
        return [(b - a) * 1000 for a, b in zip(times, times[1:])]

    def summary(self) -> dict[str, Any]:
        tracks = {}
        for track in self.media:
            gaps = sorted(self.gaps_ms(track))
            tracks[track] = {
                "frames": len(self.media[track]),
                "seconds": round(len(self.samples(track)) / self.sample_rate, 3),
                "dropped": self.dropped(track),
                "gap_ms_mean": round(statistics.fmean(gaps), 2) if gaps else None,
                "gap_ms_p99": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))], 2) if gaps else None,
                "wav": self.wavs.get(track),
            }
        return {
            "stream_id": self.stream_id,
            "codec": self.codec,
            "sample_rate": self.sample_rate,
            "frames": len(self.frames),
            "out_of_order": self.out_of_order,
            "problems": self.problems,
            "tracks": tracks,
        }


class TalkBack:
    """The other half of a voice bot, as ``on_frame``: when the stream starts it speaks (``media`` back
    into the call, in the stream's codec, then a ``mark``), and when the caller starts speaking over
    it (inbound audio louder than ``threshold``) it sends ``clear``: the barge-in. Needs a stream
    started with ``stream_bidirectional_mode: "rtp"`` and ``stream_bidirectional_codec`` = the stream's
    codec. ``said`` lists what happened, in seconds from the start frame."""

    MARK = "greeting-done"

    def __init__(self, seconds: float = 3.0, threshold: int = 2000, chunk_s: float = 0.5) -> None:
        self.seconds, self.threshold, self.chunk_s = seconds, threshold, chunk_s
        self.said: list[tuple[float, str]] = []
        self.began = 0.0
        self.speaking = False
        self.cleared_at: float | None = None
        self.mark_at: float | None = None

    def _say(self, what: str) -> None:
        self.said.append((round(time.monotonic() - self.began, 3), what))

    async def __call__(self, report: StreamReport, frame: dict[str, Any], ws: Any) -> None:
        event = frame.get("event")
        if event == "start":
            self.began, self.speaking = time.monotonic(), True
            rate, codec = report.sample_rate, report.codec
            speech = audio.tones(rate, self.seconds, notes=(523, 659, 784), level=0.25)
            step = int(rate * self.chunk_s)
            for at in range(0, len(speech), step):  # (one message may carry 20 ms to 30 s)
                payload = base64.b64encode(audio.encode(speech[at : at + step], codec)).decode()
                await ws.send(json.dumps({"event": "media", "media": {"payload": payload}}))
            await ws.send(json.dumps({"event": "mark", "mark": {"name": self.MARK}}))
            self._say(f"sent {self.seconds:g} s of speech, then mark {self.MARK!r}")
        elif event == "media" and self.speaking and self.cleared_at is None:
            media = frame.get("media", {})
            if media.get("track") == "inbound":
                samples = audio.decode(base64.b64decode(media["payload"]), report.codec)
                if samples and max(abs(s) for s in samples) > self.threshold:
                    await ws.send(json.dumps({"event": "clear"}))
                    self.cleared_at = time.monotonic() - self.began
                    self._say("the caller spoke over the bot: sent clear (barge-in)")
        elif event == "mark" and frame.get("mark", {}).get("name") == self.MARK:
            self.speaking, self.mark_at = False, time.monotonic() - self.began
            self._say(f"mark {self.MARK!r} came back")


class PerStream:
    """``on_frame`` giving each stream a handler of its own, made by ``make()`` at the stream's first
    frame: a TalkBack holds one stream's state (its greeting, its barge-in, what it said), so streams
    at the same time or one after another never share it. ``of(report)``: that stream's handler."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self._handlers: dict[int, Any] = {}  # id() of the stream's report: the Receiver keeps each report

    def of(self, report: StreamReport) -> Any:
        return self._handlers.get(id(report))

    async def __call__(self, report: StreamReport, frame: dict[str, Any], ws: Any) -> None:
        handler = self._handlers.get(id(report))
        if handler is None:
            handler = self._handlers[id(report)] = self.make()
        await handler(report, frame, ws)


class Receiver:
    """A WebSocket server on 127.0.0.1 in a background thread; ``url`` is its ws:// address.

    ``on_frame(report, frame, ws)`` (a coroutine function) may answer frames, e.g. to send audio
    back on a bidirectional stream.
    """

    def __init__(
        self,
        out_dir: str | Path | None = None,
        port: int = 0,
        on_frame: Callable[..., Any] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.host, self.port = host, port
        self.on_frame = on_frame
        self.reports: list[StreamReport] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failed: OSError | None = None  # why it could not listen (a port in use)
        self._changed = threading.Condition()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> Receiver:
        """Listen; raise OSError when it cannot (the port is in use), its thread then ended."""
        self._thread.start()
        self._ready.wait(10)
        if self._failed is not None:
            self._thread.join(5)
            raise self._failed
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait(self, count: int = 1, timeout: float = 30.0) -> list[StreamReport]:
        """Wait until ``count`` streams have ended (socket closed); return their reports."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(r.done for r in self.reports) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{sum(r.done for r in self.reports)} of {count} streams ended in {timeout} s")
                self._changed.wait(left)
        return [r for r in self.reports if r.done]

    def wait_media(self, frames: int = 1, timeout: float = 30.0, call_control_id: str | None = None) -> StreamReport:
        """Wait until one stream (of that call) has delivered ``frames`` media frames (any track); return
        its report."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                ready = [
                    r
                    for r in self.reports
                    if sum(len(a) for a in r.arrivals.values()) >= frames
                    and call_control_id in (None, r.start.get("call_control_id"))
                ]
                if ready:
                    return ready[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no stream delivered {frames} media frames in {timeout} s")
                self._changed.wait(left)

    @property
    def first_media_at(self) -> float | None:
        """time.monotonic() of the first media frame any stream delivered, or None."""
        firsts = [a[0] for r in self.reports for a in r.arrivals.values() if a]
        return min(firsts) if firsts else None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def begin() -> None:
            self._server = await serve(self._handle, self.host, self.port, max_size=1 << 22, ping_interval=None)
            self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self.port

        try:
            self.loop.run_until_complete(begin())
        except OSError as error:
            self._failed = error
            self.loop.close()
            return
        finally:
            self._ready.set()
        self.loop.run_forever()

    async def _handle(self, ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request else {}
        report = StreamReport(token_header=headers.get("x-telnyx-streaming-auth-token"))
        with self._changed:
            self.reports.append(report)
        try:
            async for message in ws:
                frame = json.loads(message)
                self._check(report, frame)
                if frame.get("event") == "media":  # wait_media() waits for this
                    with self._changed:
                        self._changed.notify_all()
                if self.on_frame is not None:
                    await self.on_frame(report, frame, ws)
        except (ConnectionClosed, ValueError) as exc:
            report.problems.append(f"stream broke: {type(exc).__name__}")
        finally:
            if report.events and report.events[-1] != "stop":
                report.problems.append("the last frame was not stop")
            self._write(report)
            with self._changed:
                report.done = True
                self._changed.notify_all()

    @staticmethod
    def _check(report: StreamReport, frame: dict[str, Any]) -> None:
        event = frame.get("event")
        seen = report.events
        if not seen and event != "connected":
            report.problems.append(f"first frame was {event!r}, not connected")
        elif seen == ["connected"] and event != "start":
            report.problems.append(f"second frame was {event!r}, not start")
        elif seen and seen[-1] == "stop":
            report.problems.append(f"{event!r} after stop")
        if event != "connected":
            number = frame.get("sequence_number")
            if isinstance(number, str) and number.isdigit():
                if report.last_sequence is not None and int(number) <= report.last_sequence:
                    report.problems.append(f"sequence_number {number} after {report.last_sequence}")
                report.last_sequence = int(number)
            elif event != "error":
                report.problems.append(f"{event} without a digit-string sequence_number")
            report.stream_id = report.stream_id or frame.get("stream_id", "")
        seen.append(str(event))
        report.frames.append(frame)
        if event == "start":
            report.start = frame.get("start", {})
        elif event == "media":
            media = frame["media"]
            track, chunk = media["track"], int(media["chunk"])
            received = report.media.setdefault(track, [])
            if received and chunk < max(c for c, _ in received[-5:]):
                report.out_of_order += 1
            received.append((chunk, base64.b64decode(media["payload"])))
            report.arrivals.setdefault(track, []).append(time.monotonic())

    def _write(self, report: StreamReport) -> None:
        if self.out_dir is None or not report.media:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for track in report.media:
            path = self.out_dir / f"{report.stream_id or 'stream'}-{track}.wav"
            audio.write_wav(path, report.samples(track), report.sample_rate)
            report.wavs[track] = str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    parser.add_argument("--out", default="out", help="folder for the WAV files (default out/)")
    parser.add_argument(
        "--talk",
        action="store_true",
        help="talk back (needs stream_bidirectional_mode rtp): speak, mark, clear on barge-in",
    )
    args = parser.parse_args(argv)
    bots = PerStream(TalkBack) if args.talk else None  # each stream its own voice bot
    try:
        receiver = Receiver(args.out, port=args.port, on_frame=bots).start()
    except OSError as error:
        why = "is in use (another server listens there)" if error.errno == errno.EADDRINUSE else f"fails: {error}"
        print(
            f"python -m stream_server: port {args.port} on 127.0.0.1 {why}: stop it, or pick another --port",
            file=sys.stderr,
        )
        return 1
    print(f"listening on {receiver.url}; Ctrl-C to stop", file=sys.stderr)
    count = 0
    try:
        while True:
            for report in receiver.wait(count + 1, timeout=3600)[count:]:
                talked = bots.of(report) if bots else None
                print(json.dumps({**report.summary(), **({"talk_back": talked.said} if talked else {})}), flush=True)
                count += 1
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
