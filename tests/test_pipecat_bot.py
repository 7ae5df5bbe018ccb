"""pipecat as a client of the emulator: the example bot (examples/pipecat_bot/bot.py: pipecat 1.14's unmodified
TelnyxFrameSerializer, built as pipecat's runner builds it) in its own process and venv, a real call of the
emulator in real time, its stream started by the product's own code (script.main) with the settings a bot
needs. The oracles are the emulator's records (what it sent the bot, what it played to the caller) and the
recording the bot shipped; the bot's report says what it heard. Runs in ./dev test's stage "pipecat bot"."""

from __future__ import annotations

import math
import socket
import subprocess
from array import array
from pathlib import Path

import pytest
from conftest import AUTH, KEY
from pipecat_bot import BOT, PIPECAT_PYTHON, REPLY, ROOT, PipecatBot, needs_pipecat

import audio_codecs as audio
import script
from emulator import Emulator

pytestmark = needs_pipecat
RATE = 8000
BOT_SETTINGS = {  # what a bot needs (README, docs/pipecat.md)
    "stream_track": "inbound_track",
    "stream_bidirectional_mode": "rtp",
    "stream_bidirectional_codec": "PCMU",
}
LISTEN_S = 0.6  # the caller first listens: the bot's greeting plays


def silence(seconds: float) -> array:
    return array("h", [0] * round(RATE * seconds))


def talking(seconds: float) -> array:
    return audio.tones(RATE, seconds)


def correlation(a: array, b: array) -> float:
    n = min(len(a), len(b))
    dot = sum(x * y for x, y in zip(a[:n], b[:n]))
    return dot / math.sqrt(sum(x * x for x in a[:n]) * sum(y * y for y in b[:n]) or 1)


def plays_from_its_start(segment: array, recording: array, stray_s: float = 0.1) -> bool:
    """Whether ``segment`` is ``recording`` from its start, after at most ``stray_s`` of other frames: what
    pipecat had on its way as it sent clear (it writes the clear as it stops its audio: a frame or two of
    the audio it stopped may still follow, and play, on a loaded machine)."""
    frames = range(0, round(stray_s * RATE) + 1, 160)  # whole 20 ms frames
    return any(correlation(segment[skip:], recording) > 0.99 for skip in frames)


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    """One bot for the file: it takes one stream after another, as a server does."""
    with PipecatBot(tmp_path_factory.mktemp("bot")) as started:
        yield started


@pytest.fixture
def emulator(monkeypatch, tmp_path):
    """In real time: pipecat paces what it sends as a phone plays it."""
    with Emulator(api_key=KEY, record_dir=tmp_path / "played") as emu:
        monkeypatch.setenv("TELNYX_BASE_URL", emu.base_url)
        yield emu


def call_the_bot(emulator: Emulator, bot: PipecatBot, caller: array, folder: Path, **settings: str | None):
    """An outgoing call whose callee picks up and says ``caller`` (after listening LISTEN_S), its stream
    started by script.main with the bot's settings changed by ``settings`` (None: not sent): (the bot's
    report, the stream)."""
    folder.mkdir(parents=True, exist_ok=True)
    audio.write_wav(folder / "caller.wav", caller, RATE)
    call = emulator.ring(
        direction="outgoing", audio=str(folder / "caller.wav"), duration_s=len(caller) / RATE, listen_s=LISTEN_S
    )
    emulator.pick_up(call)
    body = {key: value for key, value in {**BOT_SETTINGS, **settings}.items() if value is not None}
    script.main(AUTH, call, {"stream_url": bot.url, **body})
    report = bot.next_report()
    (stream,) = emulator.wait_streams(call)
    return report, stream


def first_turn(report: dict) -> float:
    """When the bot first heard the caller speak, in seconds from the stream's start."""
    return min(at for at, what in report["said"] if what == "the caller started speaking")


def test_the_bot_hears_the_caller_only_is_heard_and_stops_when_the_caller_speaks_over_it(bot, emulator, tmp_path):
    # the caller: listens (the greeting plays), speaks over it, waits for the bot's reply, speaks over it
    caller = talking(0.8) + silence(2.5) + talking(1.0) + silence(0.1)
    report, stream = call_the_bot(emulator, bot, caller, tmp_path)
    summary = stream.summary()
    assert summary["state"] == "stopped" and summary["warnings"] == []

    # the bot received the caller's audio and no other track: sample for sample, in order (G.711 both ways),
    # all of it but what was still on its way through the bot's pipeline when the call ended
    sent = silence(LISTEN_S) + caller
    assert summary["frames_sent"] == {"inbound": len(sent) // 160}
    heard = audio.read_wav(report["heard_wav"], RATE)
    assert report["encoding"] == "PCMU" and report["heard_s"] == len(heard) / RATE
    assert heard == audio.decode(audio.encode(sent, "PCMU"), "PCMU")[: len(heard)]
    assert len(sent) - len(heard) <= 0.5 * RATE, (len(sent), len(heard))
    assert first_turn(report) >= LISTEN_S  # it heard nobody while the caller listened

    # the caller heard the bot: the start of its greeting, then the start of its reply, each cut by a clear
    reply = audio.read_wav(REPLY, RATE)
    clears = [event for event in summary["timeline"] if event["kind"] == "clear"]
    assert len(clears) == 2 and report["interruptions"] == 2 and report["replies"] == 2
    cut = round(clears[0]["played_s"] * RATE)
    played = stream.played
    greeting, answer = played[:cut], played[cut:]
    assert 0.3 < len(greeting) / RATE < 1.5  # the caller spoke after LISTEN_S: the greeting was cut there
    assert 1.0 < len(answer) / RATE < len(reply) / RATE - 1.0  # the reply played until the caller spoke again
    assert correlation(greeting, reply) > 0.99 and plays_from_its_start(answer, reply)
    # a barge-in clear stops it: of the 2 s and more of the reply left, at most what pipecat had on its way
    # as it sent clear (it writes the clear as it stops its audio: a frame or two may follow) played after it
    assert len(played) - round(clears[1]["played_s"] * RATE) <= 0.1 * RATE
    assert [what for _, what in report["said"] if what.startswith("interrupted")] == [
        "interrupted: pipecat sends clear (the bot was speaking)"
    ] * 2
    print(
        f"\nthe caller heard {len(played) / RATE:.2f} s of the bot: {len(greeting) / RATE:.2f} s of its greeting, "
        f"{len(answer) / RATE:.2f} s of its reply ({len(reply) / RATE:.2f} s each)"
    )


def test_with_both_tracks_and_no_rtp_the_bot_answers_the_call_itself_and_nobody_hears_it(bot, emulator, tmp_path):
    """The settings the webhook flow once shipped: pipecat takes the outbound track as the caller too, and
    what it says is never played; the emulator says so, once, where the user looks."""
    caller = talking(0.8) + silence(1.2)
    report, stream = call_the_bot(
        emulator,
        bot,
        caller,
        tmp_path,
        stream_track="both_tracks",
        stream_bidirectional_mode=None,
        stream_bidirectional_codec=None,
    )
    summary = stream.summary()
    frames = len(silence(LISTEN_S) + caller) // 160
    assert summary["frames_sent"] == {"inbound": frames, "outbound": frames}
    assert report["heard_s"] > 1.5 * frames * 0.02  # both tracks, taken as one caller
    # while the caller listened, silent, the bot heard sound: the call's own outbound audio, every other frame
    heard = audio.read_wav(report["heard_wav"], RATE)
    listening = [heard[at : at + 160] for at in range(0, round(2 * LISTEN_S * RATE), 160)]
    loud = [index for index, frame in enumerate(listening) if max(map(abs, frame)) > 1000]
    assert len(loud) >= 10 and all(index % 2 == 1 for index in loud), loud
    assert summary["played_samples"] == 0
    media = summary["ignored"]["media"]
    assert media > 0 and summary["warnings"][0] == (
        f"your server sent {media} media frames; Telnyx plays them only with stream_bidirectional_mode rtp "
        "(this stream has none): the caller heard none of them"
    )
    print(f"\n{media} media frames from pipecat, none played")


def test_a_bidirectional_codec_other_than_what_pipecat_sends_is_named(bot, emulator, tmp_path):
    caller = silence(1.4)  # the caller listens: the bot's greeting plays for 2 s
    _, stream = call_the_bot(emulator, bot, caller, tmp_path, stream_bidirectional_codec="PCMA")
    assert stream.summary()["warnings"] == [
        "your server sends PCMU audio, the codec it receives (start.media_format), but Telnyx plays it as PCMA "
        "(stream_bidirectional_codec): the caller hears noise; set stream_bidirectional_codec to PCMU, or send PCMA"
    ]


def test_pipecat_refuses_l16_and_the_emulator_says_so(bot, emulator, tmp_path):
    report, stream = call_the_bot(emulator, bot, talking(1.0), tmp_path, stream_codec="L16")
    assert report["encoding"] == "L16" and report["heard_s"] == 0
    assert stream.failure_reason == "connection_closed"
    assert "Unsupported encoding: L16" in bot.log_so_far()  # pipecat's own words
    (warning,) = stream.summary()["warnings"]
    assert "pipecat 1.14's TelnyxFrameSerializer refuses it ('Unsupported encoding: L16')" in warning


def test_on_a_port_in_use_the_bot_says_so_in_one_line_and_exits_1():
    with socket.socket() as other:  # a server of the user's already there
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(
            [str(PIPECAT_PYTHON), str(BOT), "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    ours = [line for line in done.stderr.splitlines() if line.startswith("bot.py: ")]
    assert ours == [
        f"bot.py: port {port} on 127.0.0.1 is in use (another server listens there): stop it, or pick another --port"
    ]
