"""The example pipecat bot (examples/pipecat_bot/bot.py) as a test starts it: its own process, in its own venv
(``PIPECAT_PYTHON``; ./dev test's stage "pipecat bot" sets it to .venv-pipecat/bin/python), on a port the
OS picks. Tests that need it skip without ``PIPECAT_PYTHON`` (the first stage of ./dev test, a bare pytest).

    with PipecatBot(tmp_path) as bot:
        ...  # stream to bot.url, then: report = bot.next_report()
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "examples" / "pipecat_bot" / "bot.py"
REPLY = BOT.parent / "reply.wav"  # what the bot says
PIPECAT_PYTHON = os.environ.get("PIPECAT_PYTHON")
needs_pipecat = pytest.mark.skipif(
    not PIPECAT_PYTHON,
    reason="needs pipecat: ./dev test's stage 'pipecat bot' runs it (PIPECAT_PYTHON=.venv-pipecat/bin/python)",
)


class PipecatBot:
    """``bot.py --port 0`` started, its ``url`` read from its first line; each later line is the report of a
    stream that ended (``next_report``). Stopped with SIGTERM at the end; what it logged is in ``log``."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.folder = folder
        self.args = args
        self.url = ""
        self.log = ""
        self._lines: queue.Queue[str | None] = queue.Queue()

    def __enter__(self) -> PipecatBot:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stderr = (self.folder / "bot.log").open("w")
        command = [str(PIPECAT_PYTHON), str(BOT), "--port", "0", "--record-dir", str(self.folder), *self.args]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self._reader = threading.Thread(target=self._read, name="pipecat-bot-stdout", daemon=True)
        self._reader.start()
        first = self._lines.get(timeout=120)  # pipecat's imports take a few seconds on a loaded machine
        assert first is not None, f"the bot exited before it was ready:\n{(self.folder / 'bot.log').read_text()}"
        self.url = json.loads(first)["url"]
        return self

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self._lines.put(line)
        self._lines.put(None)  # the bot's stdout closed: it exited

    def next_report(self, timeout: float = 60) -> dict[str, Any]:
        """The report the bot printed when its next stream ended."""
        line = self._lines.get(timeout=timeout)
        assert line is not None, f"the bot exited:\n{(self.folder / 'bot.log').read_text()}"
        return json.loads(line)

    def log_so_far(self) -> str:
        """What the bot has logged (pipecat's log and its own) on stderr so far."""
        self._stderr.flush()
        return (self.folder / "bot.log").read_text()

    def __exit__(self, *exc: Any) -> None:
        self.process.terminate()
        self.process.wait(30)
        self._reader.join(10)
        self._stderr.close()
        self.log = (self.folder / "bot.log").read_text()
