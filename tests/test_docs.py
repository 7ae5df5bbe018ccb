"""The README and docs/ stay true: the README opens with what the project is and its two commands,
stays short, documents every body field (docs/fields.md), and every ```sh block of the README and
docs/ runs as written on this clone (servers started with `&` are waited for on their port, then
stopped). Blocks marked ```text need a Windmill or the network; the README's deploy block is run by
test_windmill_deploy with the real windmill-cli."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from conftest import ROOT

import script

README = (ROOT / "README.md").read_text()
OUTSIDE = "../" + "shared"  # the workplace's reference folder: a clone does not have it
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_readme_opens_with_what_it_is_and_the_two_commands():
    first = README.split("\n\n")[1]
    assert first.startswith("A Windmill script that starts a Telnyx media stream")
    block = README.split("```")[1].strip().splitlines()
    assert [line.split()[0:2] for line in block] == [["./dev", "demo"], ["./dev", "test"]]
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_reads_in_five_minutes_and_tells_no_history():
    assert len(README.splitlines()) < 150 and len(README.split()) < 1500
    for text in [README, *(p.read_text() for p in DOCS)]:
        assert not re.search(r"\b[Ii]ssues? \d", text)  # no "issue 9's measurement"
        assert OUTSIDE not in text
    for link in re.findall(r"\]\((docs/[^)#]+)\)", README):
        assert (ROOT / link).exists(), link


def test_every_field_is_documented():
    fields = (ROOT / "docs" / "fields.md").read_text()
    for field in script.BODY_FIELDS:
        assert f"| `{field}` |" in fields, f"{field} is missing from docs/fields.md"


def test_no_file_of_the_project_points_outside_the_clone():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".py", ".md", ".yaml", ".json", ".html", ".mjs") and path.is_file():
            assert OUTSIDE not in path.read_text(errors="replace"), name


def shell_blocks() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *DOCS]:
        text = path.read_text()
        first = re.search(r"^```\n(.*?)```", text, re.S | re.M) if path.name == "README.md" else None
        for match in [
            *([first] if first else []),
            *re.finditer(r"```sh\n(.*?)```", text, re.S),
        ]:  # the two commands too
            line = text[: match.start()].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return found


WAIT_PORT = """wait_port() {  # the server's port accepts a connection: it is up
  .venv/bin/python -c "import socket, sys, time
for _ in range(600):
    try:
        socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.5).close(); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit('nothing listens on port ' + sys.argv[1])" "$1"
}
"""


@pytest.mark.parametrize(("where", "block"), shell_blocks(), ids=[w for w, _ in shell_blocks()])
def test_every_shell_block_runs_as_written(where, block):
    lines = []
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if command == "./dev test":  # this very suite (CI runs it)
            continue
        lines.append(line)
        port = re.search(r"--port (\d+)", command)
        if command.endswith("&") and port:
            lines.append(f"wait_port {port.group(1)}")
    if "--talk" in block:  # the talk-back run: its stream ends, and what the caller heard is recorded
        lines.append(
            '.venv/bin/python -c "import time, glob; [time.sleep(0.1) for _ in range(300) '
            "if not glob.glob('out/played/played-*.wav')]\""
        )
    body = "set -e\n" + WAIT_PORT + "\n".join(lines) + "\nkill $(jobs -p) 2>/dev/null || true\nwait || true\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELNYX_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for old in (ROOT / "out" / "played").glob("*.wav") if (ROOT / "out" / "played").exists() else []:
        old.unlink()
    done = subprocess.run(["bash", "-c", body], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{where}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    if "--talk" in block:
        (played,) = (ROOT / "out" / "played").glob("played-*.wav")
        with wave.open(str(played)) as recording:
            heard = recording.getnframes() / recording.getframerate()
        assert 1.0 <= heard < 3.0, heard  # the bot's greeting played until the caller cut in


def test_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--cold-runs", "1", "--warm-calls", "20", "--silence-calls", "1"]
    done = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cold start" in done.stdout and out.exists()
    silence = json.loads(out.read_text())["silence"]
    assert silence["answer+stream, 1 step (shipped)"]["jobs_before_media"] == 1
    assert silence["answer, then start, 2 steps"]["jobs_before_media"] == 4
