"""What a newcomer meets first: ./dev says what it sets up on a fresh clone before the command runs, and
the demo's page lives as long as the demo says it does (on a terminal, until the user presses Enter)."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from conftest import ROOT


def test_a_fresh_clones_first_command_says_what_it_sets_up_then_runs(tmp_path):
    """The first ./dev command creates .venv and pip-installs into it (about a minute with the real
    requirements): it says so before, and how long it took after. Here the requirements are pip alone,
    already there, so nothing is downloaded; the command is a demo.py that prints one line."""
    shutil.copyfile(ROOT / "dev", tmp_path / "dev")
    (tmp_path / "dev").chmod(0o755)
    (tmp_path / "requirements-dev.txt").write_text("pip\n")
    (tmp_path / "demo.py").write_text("print('the demo runs')\n")
    python = getattr(sys, "_base_executable", sys.executable)  # the interpreter .venv was made from
    env = {**os.environ, "PYTHON": python}
    command = [str(tmp_path / "dev"), "demo"]
    first = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert first.returncode == 0, first.stdout
    version = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
    lines = first.stdout.splitlines()
    assert lines[:2] == [
        f"./dev: first run: creating .venv with {version}",
        "./dev: installing requirements-dev.txt into .venv with pip (about a minute the first time)...",
    ], lines
    assert re.fullmatch(r"\./dev: \.venv is ready \(\d+ s\)", lines[2]), lines
    assert lines[3:] == ["the demo runs"]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert (again.stdout, again.stderr) == ("the demo runs\n", "")  # set up: nothing more to say


def fresh_clone_with_dev(folder) -> dict[str, str]:
    """./dev alone in ``folder``, as on a fresh clone; the environment that runs it."""
    shutil.copyfile(ROOT / "dev", folder / "dev")
    (folder / "dev").chmod(0o755)
    return {**os.environ, "PYTHON": getattr(sys, "_base_executable", sys.executable)}


def test_dev_bot_makes_the_pipecat_venv_first_then_runs_the_bot_with_your_flags(tmp_path):
    """./dev bot on a fresh clone: .venv-pipecat made and installed, said before and after (here its
    requirements are pip alone, already there), then examples/pipecat_bot/bot.py (a stand-in) with the flags."""
    env = fresh_clone_with_dev(tmp_path)
    bot = tmp_path / "examples" / "pipecat_bot"
    bot.mkdir(parents=True)
    (bot / "requirements.txt").write_text("pip\n")
    (bot / "bot.py").write_text(
        "import sys; print('the bot runs with', sys.argv[1:], sys.prefix.endswith('-pipecat'))\n"
    )
    command = [str(tmp_path / "dev"), "bot", "--port", "0"]
    first = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert first.returncode == 0, first.stdout
    lines = first.stdout.splitlines()
    assert (
        lines[0]
        == "./dev: installing pipecat into .venv-pipecat with pip (about a minute and 530 MB the first time)..."
    )
    assert re.fullmatch(r"\./dev: \.venv-pipecat is ready \(\d+ s\)", lines[1]), lines
    assert lines[2:] == ["the bot runs with ['--port', '0'] True"]  # in .venv-pipecat, with the flags given
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert (again.stdout, again.stderr) == ("the bot runs with ['--port', '0'] True\n", "")


def test_dev_flow_says_it_installs_windmills_parser_as_itself(tmp_path):
    """./dev flow needs Windmill's parser from npm too: the line that says so names ./dev, not ./dev test.
    npm is a stand-in here (nothing is downloaded)."""
    env = fresh_clone_with_dev(tmp_path)
    (tmp_path / "requirements-dev.txt").write_text("pip\n")
    (tmp_path / "local_flow.py").write_text("print('the flow runs')\n")
    (tmp_path / "tests" / "windmill").mkdir(parents=True)
    (tmp_path / "tests" / "windmill" / "package-lock.json").write_text("{}\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "npm").write_text("#!/bin/sh\nmkdir -p node_modules\n")
    (tmp_path / "bin" / "npm").chmod(0o755)
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    done = subprocess.run([str(tmp_path / "dev"), "flow"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "the flow runs\n", done.stdout + done.stderr
    assert done.stderr.splitlines()[-1] == (
        "./dev: installing Windmill's parser, windmill-cli and flow validator with npm (tests/windmill)..."
    )


def read_until(fd: int, words: str, seconds: float) -> str:
    """What the terminal shows, up to ``words`` (or everything until the program ends or time runs out)."""
    seen, deadline = b"", time.monotonic() + seconds
    while words.encode() not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the program ended: its side of the terminal is closed
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def page_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as page:
            return page.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def test_on_a_terminal_the_demos_page_stays_open_until_enter(tmp_path):
    terminal, side = pty.openpty()
    demo = subprocess.Popen(
        [sys.executable, "demo.py", "--seconds", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        stdin=side,
        stdout=side,
        stderr=side,
        start_new_session=True,  # its emulator too is stopped below, whatever happens
    )
    os.close(side)
    try:
        shown = read_until(terminal, "press Enter to stop the emulator", 90)
        assert "(open it now: it stays open until you press Enter at the end)" in shown, shown
        url = re.search(r"page\s+(http://\S+)", shown).group(1)
        assert "round trip" in shown and demo.poll() is None  # the report is out; the demo waits
        assert page_answers(url)  # the page is still served
        os.write(terminal, b"\n")
        shown += read_until(terminal, "stream to your own server", 30)
        assert demo.wait(30) == 0, shown
        assert "\nresult: OK" in shown.replace("\r", "")
        assert not page_answers(url)  # the demo ended, and its emulator with it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)  # a test that failed leaves no demo nor emulator behind
        demo.wait()
        os.close(terminal)
