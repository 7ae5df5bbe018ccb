"""The example pipecat bot (examples/pipecat_bot) behind the shipped webhook flow, with the shipped settings:
only stream_url filled in (public_key and auth are the emulator's). A call rings in; the flow, run as
Windmill runs it (local_flow.LocalFlow: the route, one cold job, the script imported by path), answers it
with its stream; the bot hears the caller alone, the caller hears the bot (the emulator's recording of what
it played), and the caller speaking over the bot makes pipecat send clear, which stops it. The oracles are
the emulator's records and the recording the bot ships. Runs in ./dev test's stage "pipecat bot"."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import ROOT
from pipecat_bot import REPLY, PipecatBot, needs_pipecat
from test_pipecat_bot import LISTEN_S, RATE, correlation, first_turn, plays_from_its_start, silence, talking

import audio_codecs as audio
from local_flow import LocalFlow

pytestmark = needs_pipecat


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    with PipecatBot(tmp_path_factory.mktemp("bot")) as started:
        yield started


def test_a_call_answered_by_the_shipped_flow_reaches_the_bot_which_is_heard_and_stops_on_barge_in(bot, tmp_path):
    caller = talking(0.8) + silence(2.5) + talking(1.0) + silence(0.1)  # listens, speaks over the greeting, ...
    audio.write_wav(tmp_path / "caller.wav", caller, RATE)
    options = {"audio": str(tmp_path / "caller.wav"), "duration_s": len(caller) / RATE, "listen_s": LISTEN_S}
    with LocalFlow(stream_url=bot.url, call_options=options, record_dir=tmp_path / "played") as flow:
        call = flow.ring()  # incoming: nobody but the flow answers it
        report = bot.next_report(timeout=120)
        runs = flow.wait_call(call)
        (stream,) = flow.emulator.call(call).streams
        answers = [
            json.loads(r.body) for r in flow.emulator.backend.requests if r.path.endswith(f"{call}/actions/answer")
        ]

    # the flow: one job for the whole call, which answered it with a voice bot's stream
    assert all(o.status in ("success", "skipped") for _, o in runs), runs
    assert sum(o.processes for _, o in runs) == 1
    (answer,) = answers
    assert {k: v for k, v in answer.items() if k.startswith("stream_") and k != "stream_url"} == {
        "stream_track": "inbound_track",
        "stream_codec": "PCMU",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
    }
    summary = stream.summary()
    assert summary["state"] == "stopped" and summary["warnings"] == []

    # the bot received the caller's audio, all of it, and no other track
    sent = silence(LISTEN_S) + caller
    assert summary["frames_sent"] == {"inbound": len(sent) // 160}
    assert report["heard_s"] == len(sent) / RATE and first_turn(report) >= LISTEN_S
    assert audio.read_wav(report["heard_wav"], RATE) == audio.decode(audio.encode(sent, "PCMU"), "PCMU")

    # the caller heard the bot (its greeting, then its reply), each stopped by pipecat's clear on barge-in
    reply = audio.read_wav(REPLY, RATE)
    clears = [event for event in summary["timeline"] if event["kind"] == "clear"]
    assert len(clears) == 2 and report["interruptions"] == 2
    played = stream.played
    cut = round(clears[0]["played_s"] * RATE)
    assert 0.3 < cut / RATE < 1.5 and correlation(played[:cut], reply) > 0.99
    assert plays_from_its_start(played[cut:], reply)
    assert len(played) - round(clears[1]["played_s"] * RATE) <= 0.1 * RATE  # nothing more after the last clear
    (recording,) = (tmp_path / "played").glob("*.wav")  # what the caller heard, as the emulator recorded it
    assert audio.read_wav(recording, RATE) == played


def test_the_bot_started_with_dev_bot_answers_a_call_of_dev_flow_at_its_ws_path(tmp_path):
    """docs/pipecat.md's way, as a user types it: ./dev bot (its venv made if need be), then ./dev flow with
    the URL it printed (its path is /ws)."""
    bot = subprocess.Popen(
        [str(ROOT / "dev"), "bot", "--port", "0", "--record-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert bot.stdout is not None
        url = json.loads(bot.stdout.readline())["url"]  # {"url": "ws://127.0.0.1:<port>/ws"}, once it listens
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/ws")
        done = subprocess.run(
            [str(ROOT / "dev"), "flow", "--stream-url", url, "--once", "--duration", "3"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert (
            done.stdout.splitlines()[-1] == "./dev flow --once: 1 call(s), each answered and streaming, no run failed"
        )
        assert "note:" not in done.stdout and "the caller heard 0.00 s" not in done.stdout  # the bot was heard
        report = json.loads(bot.stdout.readline())  # the bot's report of the stream, as it ended
        assert report["encoding"] == "PCMU" and report["heard_s"] >= 3.0 and report["replies"] >= 1
    finally:
        bot.terminate()
        assert bot.wait(30) in (0, -15)


def test_a_stream_pipecat_refuses_ends_the_call_of_dev_flow_once_with_a_line_that_says_why(bot):
    """L16, which pipecat 1.14 refuses: the stream fails, the caller hangs up, ./dev flow --once exits 1 soon."""
    l16 = '{"stream_codec": "L16"}'
    done = subprocess.run(
        [str(ROOT / "dev"), "flow", "--stream-url", bot.url, "--once", "--duration", "3", "--stream-options", l16],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "the stream failed, so the caller, hearing nothing, hung up" in done.stdout
    assert "  note: " in done.stdout and "Unsupported encoding: L16" in done.stdout  # the emulator names why
    assert done.stdout.splitlines()[-1].startswith(
        "./dev flow --once: 1 of 1 call(s) did not stream: its stream failed (connection_closed): check the host"
    )
    assert bot.next_report()["encoding"] == "L16"  # the bot's report of that stream, read: the next test's is next
