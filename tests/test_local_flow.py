"""``./dev flow``, run as a user runs it, against a stream server of theirs (the example bot,
stream_server's TalkBack, on a port the OS picks): the emulator's calls are answered by the shipped
flow run as Windmill runs it, and stream to that server; a call rung as the page rings one is too."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from windmill.flows import find_module

from stream_server import Receiver, TalkBack

DEV = ROOT / "dev"


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
    assert "call.initiated" in out and "success (1 job): answered_with_stream" in out
    for event in ("call.answered", "streaming.started", "streaming.stopped", "call.hangup"):
        assert any(line.split()[1:2] == [event] and "(no job)" in line for line in out.splitlines()), event
    assert "5 events, 1 job(s) started a process" in out
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


def test_a_call_rung_as_the_page_rings_one_is_answered_by_the_flow(bot):
    server, _ = bot
    process = subprocess.Popen(
        [str(DEV), "flow", "--stream-url", server.url, "--calls", "0", "--duration", "30"],
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
        for line in process.stdout:
            if "call.initiated" in line:
                assert "success (1 job): answered_with_stream" in line
                break
    finally:
        process.send_signal(signal.SIGTERM)  # stopped as Ctrl-C stops it: the runs under way finish
        assert process.wait(90) == 0


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
