"""The main job, end to end on this machine, no Telnyx account: ``./dev demo``.

1. starts the emulator as users do (``python -m emulator``, reading its one JSON line),
2. starts the example stream server (stream_server/), talking back as a voice bot does, and a
   webhook catcher,
3. runs the real ``script.main`` over real HTTP, exactly as Windmill would after call.answered (with
   ``--incoming``: rings an incoming call and answers it with its stream, ``script.answer``, as the
   shipped webhook flow does),
4. shows the audio arriving, then a report: frames, seconds, codec, gaps, WAV files, webhooks, and
   the round trip: the bot's speech played into the call, its mark coming back, the caller cutting
   in (silent for BARGE_IN_S, then talking) and the bot's clear.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import audio_codecs as audio
from stream_server import Receiver, TalkBack

ROOT = Path(__file__).resolve().parent
BARGE_IN_S = 1.2  # the caller listens this long, then starts talking over the bot


class _Webhooks(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _WebhookHandler)


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _Webhooks

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.events.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds the caller talks after listening")
    parser.add_argument("--codec", default="PCMU", choices=["PCMU", "PCMA", "L16"], help="stream_codec to ask for")
    parser.add_argument("--out", default=str(ROOT / "out" / "demo"), help="where the WAV files go (this run's only)")
    parser.add_argument(
        "--incoming", action="store_true", help="ring an incoming call and answer it with its stream, as the flow does"
    )
    args = parser.parse_args(argv)
    if args.incoming and args.codec == "L16":
        parser.error("--incoming talks back at 8 kHz (answer has no stream_bidirectional_sampling_rate): PCMU or PCMA")

    webhooks = _Webhooks()
    threading.Thread(target=webhooks.serve_forever, daemon=True).start()
    webhook_url = f"http://127.0.0.1:{webhooks.server_port}/telnyx-webhooks"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.wav"):  # only this run's files stay
        old.unlink()
    caller = out / "caller.wav"  # what the caller says once they stop listening (--listen)
    rate = audio.SAMPLE_RATES[args.codec]
    audio.write_wav(caller, audio.tones(rate, args.seconds), rate)
    emulator = subprocess.Popen(  # noqa: S603 - our own module, with our own arguments
        [
            sys.executable,
            "-m",
            "emulator",
            "--quiet",
            *("--duration", str(args.seconds), "--listen", str(BARGE_IN_S), "--webhook-url", webhook_url),
            *("--codec", args.codec),
            *("--audio", str(caller), "--record-dir", str(out)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(emulator.stdout.readline())  # type: ignore[union-attr]
        print(f"emulator   {ready['base_url']}  (python -m emulator)")
        print(f"page       {ready['ui_url']}  (open it now: {_PAGE_LIFE[_interactive()]})")
        bot = TalkBack(seconds=3.0)
        with Receiver(args.out, on_frame=bot) as receiver:
            print(f"receiver   {receiver.url}  (python -m stream_server --talk)")
            problems = _run(ready, receiver, webhooks, args)
            problems += _round_trip(ready, bot, rate, out)
            _keep_the_page_open(ready["ui_url"])
    finally:
        emulator.terminate()
        code = emulator.wait(10)
        webhooks.shutdown()
    if code != 0:
        problems.append(f"the emulator exited with {code}")
    print("\nresult: " + ("OK" if not problems else "PROBLEMS (exit code 1):\n  - " + "\n  - ".join(problems)))
    print(
        "\nnext:\n"
        "  ./dev demo --incoming          as the webhook flow does it: an incoming call answered with its stream\n"
        "  .venv/bin/python -m emulator   your own emulator: open the ui_url it prints, make calls from its page\n"
        "  README.md, 'The emulator, an example stream server, the command line': stream to your own server"
    )
    return 1 if problems else 0


# What the page's life is: on a terminal the demo waits for Enter before it stops the emulator
_PAGE_LIFE = {True: "it stays open until you press Enter at the end", False: "it closes when the demo ends"}


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _keep_the_page_open(url: str) -> None:
    """On a terminal, the emulator and its page stay up until the user is done looking."""
    if not _interactive():
        return
    try:
        input(f"\nthe page {url} stays open: press Enter to stop the emulator and end the demo ")
    except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C: done too
        print()


def _run(ready: dict[str, Any], receiver: Receiver, webhooks: _Webhooks, args: argparse.Namespace) -> list[str]:
    sys.path.insert(0, str(ROOT))
    import script  # the real script, as Windmill runs it

    os.environ["TELNYX_BASE_URL"] = ready["base_url"]
    body = {
        "stream_url": receiver.url,
        "stream_track": "inbound_track",  # a bot hears the caller only (with both_tracks, its own voice too)
        "stream_codec": args.codec,
        "stream_auth_token": "demo-secret-token",
        "custom_parameters": [{"name": "flow", "value": "windmill-demo"}],
        "client_state": "ZGVtbw==",
        "stream_bidirectional_mode": "rtp",  # the bot talks back
        "stream_bidirectional_codec": args.codec,
        "stream_bidirectional_sampling_rate": audio.SAMPLE_RATES[args.codec],
    }
    auth = script.telnyx(apiKey=ready["api_key"])
    if args.incoming:  # as the webhook flow does: the stream starts with the answer
        call = _ring(ready, webhooks, args)
        body = {k: v for k, v in body.items() if k in script.ANSWER_FIELDS}
        print(f"\nincoming call {call[:16]}... rings (call.initiated, parked): nobody else answers it")
        print(f"answer(auth, {call[:16]}..., body={json.dumps(body)})")
        began = time.monotonic()
        result = script.answer(auth, call, body)
        ready["call_control_id"] = call
    else:
        print(f"\nmain(auth, {ready['call_control_id'][:16]}..., body={json.dumps(body)})")
        began = time.monotonic()
        result = script.main(auth, ready["call_control_id"], body)
    took = (time.monotonic() - began) * 1000
    print(f"  -> {json.dumps(result)}   in {took:.0f} ms, command_id {result.command_id}")

    live = sys.stdout.isatty()  # one line redrawn on a terminal, a line a second in a log
    while not (receiver.reports and receiver.reports[0].done):
        report = receiver.reports[0] if receiver.reports else None
        frames = len(report.media.get("inbound", [])) if report else 0
        line = f"  audio flowing: {frames * 0.02:5.2f} s received, {frames:4d} frames a track"
        print("\r" + line if live else line, end="" if live else "\n", flush=True)
        time.sleep(0.1 if live else 1.0)
        if time.monotonic() - began > BARGE_IN_S + args.seconds + 10:
            return ["the stream did not end in time"]
    report = receiver.wait(1, timeout=5)[0]
    time.sleep(0.3)  # the last webhook is posted just after the socket closes
    summary = report.summary()
    print(f"\r  audio flowing: done{' ' * 40}" if live else "  audio flowing: done")
    codec = f"codec {summary['codec']} @ {summary['sample_rate']} Hz"
    print(f"\nstream {summary['stream_id']}: {summary['frames']} frames, {codec}")
    if body.get("stream_auth_token"):
        print(f"  auth token delivered: {report.token_header == body['stream_auth_token']}")
    print(f"  custom_parameters in start: {report.start.get('custom_parameters')}")
    print(f"  out of order: {summary['out_of_order']}")
    for track, info in summary["tracks"].items():
        print(
            f"  {track:8s} {info['frames']} frames, {info['seconds']} s, dropped {info['dropped']}, "
            f"gap mean {info['gap_ms_mean']} ms / p99 {info['gap_ms_p99']} ms -> {info['wav']}"
        )
    events = [e["data"]["event_type"] for e in webhooks.events]
    print(f"  webhooks: {', '.join(events)}")
    problems = list(summary["problems"])
    expected = ["call.hangup", "streaming.started", "streaming.stopped"]  # the caller hung up
    expected += ["call.answered", "call.initiated"] if args.incoming else []
    if sorted(events) != sorted(expected):
        problems.append(f"webhooks were {events}")
    if any(info["dropped"] for info in summary["tracks"].values()):
        problems.append("frames were dropped")
    return problems


def _ring(ready: dict[str, Any], webhooks: _Webhooks, args: argparse.Namespace) -> str:
    """An incoming call with the same caller (the emulator's admin route)."""
    import urllib.request

    origin = ready["base_url"].rsplit("/v2", 1)[0]
    options = {
        "direction": "incoming",
        "codec": args.codec,
        "audio": str(Path(args.out) / "caller.wav"),
        "duration_s": args.seconds,
        "listen_s": BARGE_IN_S,
        "webhook_url": f"http://127.0.0.1:{webhooks.server_port}/telnyx-webhooks",
    }
    url = f"{origin}/_emulator/calls"
    request = urllib.request.Request(url, data=json.dumps(options).encode(), method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the emulator on loopback
        return str(json.loads(answer.read())["call_control_id"])


def _round_trip(ready: dict[str, Any], bot: TalkBack, rate: int, out: Path) -> list[str]:
    """The bot's half: what it said, what the caller heard of it, when the mark came back."""
    import urllib.request

    origin = ready["base_url"].rsplit("/v2", 1)[0]
    with urllib.request.urlopen(f"{origin}/_emulator/calls/{ready['call_control_id']}", timeout=5) as answer:  # noqa: S310
        (stream,) = json.loads(answer.read())["streams"]
    heard = stream["played_samples"] / rate
    print("\nround trip (the bot talking back):")
    for at, what in bot.said:
        print(f"  {at:6.2f} s  {what}")
    print(f"  the caller heard {heard:.2f} s of the bot's {bot.seconds:g} s (the rest was cleared)")
    print(f"  what the caller heard of it: {out / ('played-' + stream['stream_id'] + '.wav')}")
    return verdict(stream, bot, rate)


def verdict(stream: dict[str, Any], bot: TalkBack, rate: int) -> list[str]:
    """What went wrong with the bot's half, the cause first: what the emulator says Telnyx would have done
    with what the bot sent (its stream summary's warnings: e.g. audio on a stream that is not rtp, a
    codec that does not fit), then what the caller and the bot saw."""
    heard = stream["played_samples"] / rate
    problems = [f"the bot's audio did not reach the caller as sent: {warning}" for warning in stream["warnings"]]
    if bot.said and heard == 0:
        problems.append("the caller heard none of the bot's audio")
    elif not 0.5 <= heard < bot.seconds - 0.5:
        problems.append(f"the caller heard {heard:.2f} s of the bot, not a cut greeting")
    if bot.cleared_at is None:
        problems.append("the bot never heard the caller cut in")
    if bot.mark_at is None:
        problems.append("the mark never came back")
    return problems


if __name__ == "__main__":
    sys.exit(main())
