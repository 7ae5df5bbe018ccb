"""A voice bot on pipecat for Telnyx media streams: it greets the caller with a recording, says it again
each time they stop speaking, and stops talking when they speak over it. No AI service, no key.

Run it (pipecat has its own venv, .venv-pipecat: ./dev bot makes it if need be, then runs this file with
the flags given):

    ./dev bot --port 8765        (or .venv-pipecat/bin/python examples/pipecat_bot/bot.py --port 8765)

It prints one JSON line when ready, {"url": "ws://127.0.0.1:8765/ws"} (--port 0: any free port), then one
JSON line per stream when it ends (what the bot heard, said and cut short). Give that url to Telnyx as
``stream_url`` (in production behind wss://), with the settings a bot needs:

    {"stream_url": "wss://.../ws", "stream_track": "inbound_track",
     "stream_bidirectional_mode": "rtp", "stream_bidirectional_codec": "PCMU"}

Behind the shipped webhook flow, on this machine: ``./dev flow --stream-url ws://127.0.0.1:8765/ws``
(docs/pipecat.md); or against the emulator alone: ``TELNYX_BASE_URL=... python script.py CALL_ID --body '{...}'``.

How it is built: pipecat's own pieces, unmodified. The WebSocket route reads Telnyx's first two frames with
pipecat's ``parse_telephony_websocket`` and builds ``TelnyxFrameSerializer`` as pipecat's runner does
(``pipecat.runner.utils``: the stream_id, the call_control_id, ``outbound_encoding`` = the start frame's
``media_format.encoding``, ``inbound_encoding`` = PCMU), but with ``auto_hang_up`` off (below). The
pipeline: the transport's input, pipecat's ``VADProcessor`` with a loudness gate as its analyser (pipecat's
own Silero model does not hear the emulator's test tones as speech: swap in ``SileroVADAnalyzer()`` for
real callers), pipecat's ``UserTurnProcessor`` (a turn starts with the caller's voice and interrupts the
bot: pipecat sends Telnyx ``clear``), ``ReplyBot`` (below: the recording when the stream starts and when
a turn ends), the output.

pipecat's traps on Telnyx, and the settings that avoid them:
- ``pipecat-ai[websocket]`` brings FastAPI but no server: install ``uvicorn`` too (requirements.txt).
- The serializer's ``inbound_encoding`` is what the BOT SENDS (``outbound_encoding`` what it receives):
  ``stream_bidirectional_codec`` must equal it (PCMU here, as pipecat's runner), or the caller hears noise.
- ``auto_hang_up`` (on by default) needs an API key, refuses to start without one, and at the end of the
  pipeline POSTs the hang-up to api.telnyx.com whatever TELNYX_BASE_URL says: off here (against the
  emulator it would call the real Telnyx). Turn it on in production if the bot ends calls.
- The serializer does not read a frame's ``track``: with ``stream_track: both_tracks`` it takes the call's
  own outbound audio as the caller speaking, so the bot talks over nobody. Use ``inbound_track``.
- Only ``stream_bidirectional_mode: rtp`` plays what the bot sends (Telnyx takes other media as MP3 files).
- pipecat 1.14's serializer refuses L16 (``Unsupported encoding: L16``) and the stream ends: leave
  ``stream_codec`` unset (the call's PCMU or PCMA) or set PCMU.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import socket
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    SpeechOutputAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.telnyx import TelnyxFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

RATE = 8000  # Telnyx's G.711: the pipeline runs at the call's rate, nothing is resampled
HERE = Path(__file__).resolve().parent


class LoudnessVAD(VADAnalyzer):
    """pipecat's VAD analyser interface with a loudness gate for a model: 20 ms louder than ``dbfs`` is
    voice. pipecat's VADAnalyzer still smooths it (start_secs, stop_secs) into speech started / stopped."""

    def __init__(self, dbfs: float = -35.0) -> None:
        super().__init__(params=VADParams(min_volume=0.0))  # the gate below is the whole test of loudness
        self.threshold = 32768 * 10 ** (dbfs / 20)

    def num_frames_required(self) -> int:
        return self.sample_rate // 50

    def voice_confidence(self, buffer: bytes) -> float:
        samples = np.frombuffer(buffer, dtype=np.int16).astype(np.float64)
        return 1.0 if samples.size and np.sqrt(np.mean(samples**2)) > self.threshold else 0.0


class ReplyBot(FrameProcessor):
    """It speaks the recording when the stream starts and when the caller's turn ends; pipecat's interruption
    (the caller's next turn) cuts it short. It keeps what the bot heard and did, for the report printed
    when the stream ends."""

    def __init__(self, reply: bytes, record: Path | None) -> None:
        super().__init__()
        self.reply, self.record = reply, record
        self.began = time.monotonic()
        self.heard = bytearray()  # the caller's audio as the bot received it (16-bit, RATE)
        self.said: list[tuple[float, str]] = []
        self.turns = self.replies = self.interruptions = 0
        self.speaking = False

    def _say(self, what: str) -> None:
        self.said.append((round(time.monotonic() - self.began, 3), what))
        logger.info(f"bot: {what}")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.heard += frame.audio
        elif isinstance(frame, UserStartedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            self.turns += 1
            self._say("the caller started speaking")
        elif isinstance(frame, InterruptionFrame) and direction == FrameDirection.DOWNSTREAM:
            self.interruptions += 1
            self._say("interrupted: pipecat sends clear" + (" (the bot was speaking)" if self.speaking else ""))
        elif isinstance(frame, BotStartedSpeakingFrame):
            self.speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.speaking = False
        await self.push_frame(frame, direction)
        if isinstance(frame, UserStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            for speech in self.speech("the caller stopped speaking: replying"):
                await self.push_frame(speech)

    def speech(self, why: str) -> list[Frame]:
        """The recording, in 20 ms frames of audio for the transport's output."""
        self.replies += 1
        self._say(f"{why} ({len(self.reply) / 2 / RATE:.2f} s)")
        step = RATE // 50 * 2  # 20 ms of 16-bit samples; pipecat tracks the bot speaking by these frames
        chunks = [self.reply[at : at + step] for at in range(0, len(self.reply), step)]
        return [SpeechOutputAudioRawFrame(chunk, RATE, 1) for chunk in chunks]

    def report(self, call: dict[str, Any]) -> dict[str, Any]:
        path = None
        if self.record is not None:
            self.record.mkdir(parents=True, exist_ok=True)
            path = self.record / f"{call['stream_id']}-heard.wav"
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(RATE)
                wav.writeframes(bytes(self.heard))
        return {
            "stream_id": call["stream_id"],
            "call_control_id": call["call_id"],
            "encoding": call["outbound_encoding"],
            "heard_s": round(len(self.heard) / 2 / RATE, 3),
            "caller_turns": self.turns,
            "replies": self.replies,
            "interruptions": self.interruptions,
            "said": self.said,
            "heard_wav": str(path) if path else None,
        }


def serializer_for(call: Any) -> TelnyxFrameSerializer:
    """As pipecat's runner builds it (pipecat.runner.utils, telnyx), with auto_hang_up off (the docstring)."""
    return TelnyxFrameSerializer(
        stream_id=call["stream_id"],
        call_control_id=call["call_id"],
        outbound_encoding=call["outbound_encoding"],
        inbound_encoding="PCMU",
        api_key=os.getenv("TELNYX_API_KEY", ""),
        params=TelnyxFrameSerializer.InputParams(auto_hang_up=False),
    )


async def run_bot(websocket: WebSocket, reply: bytes, record: Path | None) -> None:
    provider, call = await parse_telephony_websocket(websocket)  # Telnyx's connected and start frames
    if provider != "telnyx":
        logger.error(f"not a Telnyx media stream (pipecat found {provider!r}): closing")
        await websocket.close()
        return
    logger.info(f"stream {call['stream_id']} of call {call['call_id']}, the caller in {call['outbound_encoding']}")
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer_for(call)
        ),
    )
    bot = ReplyBot(reply, record)
    turns = UserTurnProcessor(
        user_turn_strategies=UserTurnStrategies(
            start=[VADUserTurnStartStrategy()],  # the caller's voice starts a turn and interrupts the bot
            stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.3, wait_for_transcript=False)],
        )
    )
    pipeline = Pipeline([transport.input(), VADProcessor(vad_analyzer=LoudnessVAD()), turns, bot, transport.output()])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        enable_rtvi=False,  # a phone call sends no RTVI client-ready: pipecat would wait for it
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: Any, client: Any) -> None:
        await worker.queue_frames(bot.speech("greeting"))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: Any, client: Any) -> None:
        await worker.cancel()  # Telnyx closed the stream (the call ended, or streaming_stop)

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    print(json.dumps(bot.report(call)), flush=True)


def app(reply: bytes, record: Path | None) -> FastAPI:
    api = FastAPI()

    @api.websocket("/ws")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        await run_bot(websocket, reply, record)

    return api


def read_reply(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, RATE):
            raise SystemExit(f"{path}: the reply must be a mono 16-bit WAV at {RATE} Hz")
        return wav.readframes(wav.getnframes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bot.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    parser.add_argument("--reply", type=Path, default=HERE / "reply.wav", help="what the bot says (mono 16-bit 8 kHz)")
    parser.add_argument("--record-dir", type=Path, help="keep what the bot heard, a WAV per stream")
    parser.add_argument("--verbose", action="store_true", help="pipecat's debug log on stderr")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "INFO")
    reply = read_reply(args.reply)
    try:
        listener = socket.create_server((args.host, args.port))  # bound here, so --port 0 can say which port
    except OSError as error:
        why = "is in use (another server listens there)" if error.errno == errno.EADDRINUSE else f"fails: {error}"
        print(f"bot.py: port {args.port} on {args.host} {why}: stop it, or pick another --port", file=sys.stderr)
        return 1
    host, port = listener.getsockname()[:2]
    print(json.dumps({"url": f"ws://{host}:{port}/ws"}), flush=True)
    server = uvicorn.Server(uvicorn.Config(app(reply, args.record_dir), log_level="warning"))
    asyncio.run(server.serve(sockets=[listener]))  # until SIGINT or SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
