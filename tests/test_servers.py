"""The example stream server's and the emulator's command lines, run as a user runs them: on a port
already in use each says so in one line and exits 1 (no traceback, no hang), and the stream server's
``--talk`` gives every stream a voice bot of its own: each one greets, sends its own barge-in ``clear``
and reports only its own events, whether the calls come one after another or at the same time. The
oracle for what each stream did is the emulator's record of what it received."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import KEY, ROOT, start

from emulator import Emulator

BOT_STREAM = {"stream_track": "inbound_track", "stream_bidirectional_mode": "rtp", "stream_bidirectional_codec": "PCMU"}
GREETING = "sent 3 s of speech, then mark 'greeting-done'"  # the stream server's TalkBack, as shipped
CLEAR = "the caller spoke over the bot: sent clear (barge-in)"
MARK_BACK = "mark 'greeting-done' came back"


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A port some other server of the user's listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize("module", ["stream_server", "emulator"])
def test_a_port_in_use_is_said_in_one_line_and_exits_1(module, port_in_use):
    done = subprocess.run(
        [sys.executable, "-m", module, "--port", str(port_in_use)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr == (
        f"python -m {module}: port {port_in_use} on 127.0.0.1 is in use (another server listens there): "
        "stop it, or pick another --port\n"
    )


@pytest.fixture
def talk_server(tmp_path) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m stream_server --talk`` on a port the OS picks, and its URL (its first line on stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_server", "--port", "0", "--talk", "--out", str(tmp_path / "rx")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal_ctrl_c,
    )
    try:
        assert process.stderr is not None
        listening = process.stderr.readline()
        assert listening.startswith("listening on ws://127.0.0.1:"), listening
        yield process, listening.split()[2].rstrip(";")
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(30) == 0


def terminal_ctrl_c() -> None:
    """In the child: Ctrl-C as a terminal delivers it, even when this suite runs as a background job (which
    starts its children with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def live_emulator(monkeypatch, tmp_path) -> Iterator[Emulator]:
    """The emulator in real time: the bot's greeting plays while the caller listens, then is cut short."""
    with Emulator(api_key=KEY, record_dir=tmp_path / "played") as emu:
        monkeypatch.setenv("TELNYX_BASE_URL", emu.base_url)
        yield emu


def reports(process: subprocess.Popen, count: int) -> dict[str, dict]:
    """The next ``count`` lines the server prints, one per stream as it ends, by stream_id."""
    assert process.stdout is not None
    lines = [json.loads(process.stdout.readline()) for _ in range(count)]
    return {line["stream_id"]: line for line in lines}


def each_had_its_own_bot(emulator: Emulator, calls: list[str], printed: dict[str, dict]) -> None:
    for call in calls:
        (stream,) = emulator.wait_streams(call)
        # what the emulator received on this stream: the greeting (6 half-second frames), its mark, a clear
        assert stream.summary()["received"] == {"media": 6, "mark": 1, "clear": 1}, call
        said = [what for _, what in printed[stream.stream_id]["talk_back"]]
        assert said == [GREETING, CLEAR, MARK_BACK], call  # its own events, none of another stream's


def test_each_stream_of_talk_gets_its_own_bot_one_call_after_another(talk_server, live_emulator):
    process, url = talk_server
    for _ in range(2):
        call = live_emulator.create_call(duration_s=1.0, listen_s=0.5)
        start(call, {"stream_url": url, **BOT_STREAM})
        printed = reports(process, 1)  # the stream ended: the next call comes after
        each_had_its_own_bot(live_emulator, [call], printed)


def test_each_stream_of_talk_gets_its_own_bot_two_calls_at_once(talk_server, live_emulator):
    process, url = talk_server
    calls = [live_emulator.create_call(duration_s=1.0, listen_s=0.5) for _ in range(2)]
    for call in calls:
        start(call, {"stream_url": url, **BOT_STREAM})
    each_had_its_own_bot(live_emulator, calls, reports(process, 2))
