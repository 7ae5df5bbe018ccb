"""The example pipecat bot (examples/pipecat_bot) behind the shipped webhook flow, with the shipped settings:
only stream_url filled in (public_key and auth are the emulator's). A call rings in; the flow, run as
Windmill runs it (local_flow.LocalFlow: the route, one cold job, the script imported by path), answers it
with its stream; the bot hears the caller alone, the caller hears the bot (the emulator's recording of what
it played), and the caller speaking over the bot makes pipecat send clear, which stops it. The oracles are
the emulator's records and the recording the bot ships. Runs in ./dev test's stage "pipecat bot"."""

from __future__ import annotations

import json

import pytest
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
    assert {k: answer[k] for k in ("stream_track", "stream_bidirectional_mode", "stream_bidirectional_codec")} == {
        "stream_track": "inbound_track",
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
