"""``./dev flow``, run as a user runs it, against a stream server of theirs (the example bot,
stream_server's TalkBack, on a port the OS picks): the emulator's calls are answered by the shipped
flow run as Windmill runs it, and stream to that server; a call rung as the page rings one is too.
A stream that fails (nothing listening, wss:// to a plain server) ends the call soon, with a line
saying why and exit code 1; settings the script would refuse are refused before any call rings."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from windmill.flows import find_module

import audio_codecs as audio
from stream_server import Receiver, TalkBack

DEV = ROOT / "dev"
SHIPPED = ROOT / "deploy" / "start_stream_on_answer.flow" / "flow.yaml"


@pytest.fixture
def bot(tmp_path):
    """A voice bot of the user's: it speaks when the stream starts and stops when the caller talks over it."""
    talk = TalkBack(seconds=2.0)
    with Receiver(tmp_path / "received", on_frame=talk) as server:
        yield server, talk


def flow_command(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEV), "flow", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_a_call_is_answered_by_the_shipped_flow_and_streams_to_your_bot(bot, tmp_path):
    server, talk = bot
    done = flow_command(
        "--stream-url", server.url, "--once", "--duration", "3", "--record-dir", str(tmp_path / "heard")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert '"voice_bot": true' in out and f'"stream_url": "{server.url}"' in out  # the shipped settings, shown
    assert "call.initiated" in out and "1 job, answered_with_stream: incoming call answered" in out
    for event in ("call.answered", "streaming.started", "streaming.stopped", "call.hangup"):
        assert any(line.split()[1:2] == [event] and " no job: " in line for line in out.splitlines()), event
    assert "5 events, 1 job; the caller's audio ended (--duration)" in out
    assert out.splitlines()[-1] == "./dev flow --once: 1 call(s), each answered and streaming, no run failed"
    (report,) = server.reports
    assert set(report.media) == {"inbound"}  # the caller only: the bot never hears itself
    assert [what for _, what in talk.said][:1] == ["sent 2 s of speech, then mark 'greeting-done'"]
    (heard,) = (tmp_path / "heard").glob("*.wav")  # what the caller heard: the bot
    assert heard.stat().st_size > 44 + 8000 * 2 * 0.5
    assert "the caller heard" in out and "the caller heard 0.00 s" not in out


def test_your_exported_flow_yaml_with_its_settings(bot, tmp_path):
    """The flow.yaml a user exported and edited (a recorder: both tracks, no talk-back), its own step."""
    server, _ = bot
    subprocess.run(
        [sys.executable, "-m", "deploy.export", str(tmp_path / "ws")], cwd=ROOT, check=True, capture_output=True
    )
    flow_file = tmp_path / "ws" / "f" / "telnyx" / "start_stream_on_answer.flow" / "flow.yaml"
    flow = yaml.safe_load(flow_file.read_text())
    settings = find_module(flow, "event")["value"]["input_transforms"]
    settings["stream_url"]["value"] = server.url
    settings["voice_bot"]["value"] = "false"  # as a $var: setting would hand it over: text
    settings["public_key"]["value"] = "bm90IHRoZSBlbXVsYXRvcidzIGtleQ=="  # theirs: the emulator's replaces it
    flow_file.write_text(yaml.safe_dump(flow, sort_keys=False))
    done = flow_command(
        "--flow", str(flow_file), "--once", "--duration", "2", "--stream-options", '{"stream_codec": "PCMA"}'
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = server.reports
    assert set(report.media) == {"inbound", "outbound"} and report.codec == "PCMA"


def test_a_call_rung_as_the_page_rings_one_is_answered_by_the_flow_and_summed_up_as_it_ends(bot):
    server, _ = bot
    process = subprocess.Popen(
        [str(DEV), "flow", "--stream-url", server.url, "--calls", "0", "--duration", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # what it prints, up to the command that rings a call
            lines.append(line)
            if line.startswith("ring another call: "):
                break
        page = next(line for line in lines if line.startswith("the emulator: ")).split(" at ")[1].strip()
        origin = page.rsplit("/_emulator", 1)[0]
        request = urllib.request.Request(f"{origin}/_emulator/calls", data=b"{}", method="POST")  # the page's New call
        with urllib.request.urlopen(request, timeout=10) as answer:
            call = json.loads(answer.read())["call_control_id"]
        report = server.wait_media(frames=25, call_control_id=call, timeout=120)  # answered by the flow, streaming
        assert set(report.media) == {"inbound"}
        said = []
        for line in process.stdout:  # each run as it ends, then the call's summary as the call ends
            said.append(line)
            if line.startswith("  stream "):
                break
        (initiated,) = [line for line in said if " call.initiated " in line]
        assert "1 job, answered_with_stream" in initiated
        assert f"call {call}: 5 events, 1 job; the caller's audio ended (--duration)\n" in said
        assert "streaming" in said[-1] or "stopped" in said[-1]
        assert "frames sent to your server, the caller heard" in said[-1] and "heard 0.00 s" not in said[-1]
    finally:
        process.send_signal(signal.SIGTERM)  # stopped as Ctrl-C stops it: the runs under way finish
        assert process.wait(90) == 0


def unused_port() -> socket.socket:
    """A port bound and not listening: a connection to it is refused, and no other process takes it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize("where", ["nothing listening, the pipecat bot's /ws path", "wss:// to a plain ws:// server"])
def test_a_failed_stream_ends_the_call_with_a_line_that_says_why(where, bot):
    """The stream fails: the caller, hearing nothing, hangs up (the emulator's caller would wait on the
    line forever), the run of streaming.failed says what to check, and one line sums it up; exit 1."""
    server, _ = bot
    with unused_port() as closed:
        url = {
            "nothing listening, the pipecat bot's /ws path": f"ws://127.0.0.1:{closed.getsockname()[1]}/ws",
            "wss:// to a plain ws:// server": server.url.replace("ws://", "wss://"),
        }[where]
        done = flow_command("--stream-url", url, "--once", "--duration", "3", timeout=100)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        "1 job, nothing sent: streaming.failed: the stream did not start (failure_reason: connection_failed); "
        "check the host, port and path of stream_url" in done.stdout
    )
    assert any(line.endswith("the stream failed, so the caller, hearing nothing, hung up") for line in lines)
    assert "  stream " in done.stdout and ": failed (connection_failed), 0 frames sent" in done.stdout
    assert lines[-1] == (
        "./dev flow --once: 1 of 1 call(s) did not stream: its stream failed (connection_failed): check the host, "
        "port and path of the stream_url and that your server there accepts the WebSocket handshake"
    )
    assert server.reports == [] or all(not r.media for r in server.reports)  # nothing streamed to it


def test_settings_the_script_refuses_are_refused_before_a_call_rings():
    http = flow_command("--stream-url", "http://127.0.0.1:9/media", "--once")
    assert http.returncode == 2 and "Traceback" not in http.stderr
    assert http.stderr.startswith(
        "./dev flow: the flow's stream settings would be refused on every call: body.stream_url is invalid, got "
        "'http://127.0.0.1:9/media': must be a ws:// or wss:// URL with a host."
    )
    assert http.stdout == ""  # no emulator started, no call rung
    codec = flow_command("--stream-url", "ws://127.0.0.1:9", "--stream-options", '{"stream_codec": "G711"}')
    assert codec.returncode == 2 and "body.stream_codec is invalid, got 'G711'" in codec.stderr
    assert codec.stdout == ""


def test_a_pcma_caller_reaches_the_example_talk_back_through_the_shipped_flow_and_hears_it(bot, tmp_path):
    """Much of Europe and India calls in PCMA: the shipped voice bot's stream_codec PCMU makes Telnyx transcode,
    so the example bot (it answers in the codec it receives) is heard, and the emulator has no codec note."""
    server, talk = bot
    heard = tmp_path / "heard"
    done = flow_command(
        "--stream-url", server.url, "--codec", "PCMA", "--once", "--duration", "3", "--record-dir", str(heard)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note:" not in done.stdout and "!!" not in done.stderr  # no warning of any kind, the codec's included
    (report,) = server.reports
    assert report.start["media_format"]["encoding"] == "PCMU" and report.problems == []
    assert [what for _, what in talk.said][:2] == [
        "sent 2 s of speech, then mark 'greeting-done'",
        "the caller spoke over the bot: sent clear (barge-in)",
    ]
    (played,) = heard.glob("*.wav")  # what the caller heard, as the emulator played it
    greeting = audio.tones(8000, 2.0, notes=(523, 659, 784), level=0.25)  # TalkBack's speech, in PCMU
    samples = audio.read_wav(played, 8000)
    assert len(samples) >= 8000 * 1.0  # the greeting played until the caller spoke over it at 1.5 s
    assert samples == audio.decode(audio.encode(greeting, "PCMU"), "PCMU")[: len(samples)]  # as the bot said it


def test_its_first_run_says_it_installs_the_steps_packages(tmp_path):
    """The step's packages (its lock) are pip-installed once, before the first call: about 15 s that would
    otherwise pass in silence. Here the lock is new to this machine and holds no package (nothing is
    downloaded): the first run says so, the next does not."""
    flow = yaml.safe_load(SHIPPED.read_text())
    step = find_module(flow, "event")["value"]
    lock = f"# a lock no run has installed: {uuid.uuid4()}\n"
    step["content"] = (SHIPPED.parent / step["content"].removeprefix("!inline ")).read_text()
    step["lock"] = lock
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    command = ("--flow", str(tmp_path / "flow.yaml"), "--stream-url", "ws://127.0.0.1:9", "--calls", "0", "--once")
    try:
        first = flow_command(*command)
        assert first.returncode == 0, first.stdout + first.stderr
        assert first.stderr.splitlines()[0] == (
            "./dev flow: first run: installing the flow step's packages with pip (about 15 s; cached after)..."
        )
        again = flow_command(*command)
        assert again.returncode == 0 and "installing" not in again.stderr, again.stderr
    finally:  # the lock's files in the harness's cache (named after its text), gone: the next run is a first again
        named = f"step-{hashlib.sha256(lock.encode()).hexdigest()[:16]}"
        for made in (ROOT / "tests" / "windmill" / ".sites").glob(f"{named}*"):
            if made.is_dir():
                shutil.rmtree(made)
            else:
                made.unlink()


def test_it_says_what_is_missing(tmp_path):
    done = flow_command("--once")
    assert done.returncode == 2 and "stream_url is not set: give your server's WebSocket URL" in done.stderr
    bad = flow_command("--stream-url", "ws://127.0.0.1:9", "--stream-options", "[1]")
    assert bad.returncode == 2 and "--stream-options must be a JSON object" in bad.stderr
    missing = flow_command("--stream-url", "ws://127.0.0.1:9", "--flow", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "cannot read the flow" in missing.stderr


def test_the_readme_gives_the_command():
    assert "./dev flow --stream-url ws://127.0.0.1:8765" in (ROOT / "README.md").read_text()
    assert Path(ROOT / "local_flow.py").exists()
