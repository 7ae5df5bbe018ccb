"""The README and docs/ stay true: the README opens with what the project is and its two commands,
stays short, documents every body field (docs/fields.md), and every ```sh block of the README and
docs/ runs pasted whole, as a user pastes it (one bash process per block), and prints what its text
says. Blocks marked ```text need a Windmill or the network; the README's deploy blocks are run by
test_windmill_deploy with the real windmill-cli.

A block runs in a copy of the checkout, with the ports it names changed to free ones the OS picks:
the user's own emulator and stream server on 8080 and 8765, and their runs' files in out/, are never
touched. The block tests prove it: they hold the ports the docs name while the blocks run (where they
are free; a busy one is the user's server) and fail when a block connects to one, or when anything
in the checkout's out/ changed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
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


def test_every_relative_link_of_the_docs_resolves():
    """A link in docs/ is relative to docs/: ../script.py, not script.py."""
    for page in DOCS:
        for link in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if not link.startswith(("http://", "https://", "mailto:")):
                assert (page.parent / link).exists(), f"{page.relative_to(ROOT)} links {link}, which is not there"


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
    """(where, text) of the README's first block (the two commands) and every ```sh block."""
    found = []
    for path in [ROOT / "README.md", *DOCS]:
        text = path.read_text()
        first = re.search(r"^```\n(.*?)```", text, re.S | re.M) if path.name == "README.md" else None
        for match in [*([first] if first else []), *re.finditer(r"```sh\n(.*?)```", text, re.S)]:
            line = text[: match.start()].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return found


BLOCKS = shell_blocks()
# Every port a block names (a server's --port, a URL's 127.0.0.1:<port>): a user's, never a test's
PORT = re.compile(r"(--port |127\.0\.0\.1:)(\d{2,5})\b")
DOCS_PORTS = sorted({int(port) for _, block in BLOCKS for _, port in PORT.findall(block)})
# What a copy of the checkout leaves out: the venv is linked, the rest is a machine's, not the project's
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".venv-sdk", "node_modules", ".sites", "mutants", "out", "results", "__pycache__",
    ".pytest_cache", ".ruff_cache", ".hypothesis",
)  # fmt: skip
# Watches a pasted block without changing it: each command that fails is named on stderr
ERR_TRAP = "trap 'echo \"!! exit $? from: $BASH_COMMAND\" >&2' ERR\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def files_in(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file under ``folder`` -> (size, mtime): what a test must leave as it found it."""
    found = {}
    for path in folder.rglob("*") if folder.is_dir() else []:
        if path.is_file():
            found[str(path.relative_to(folder))] = (path.stat().st_size, path.stat().st_mtime_ns)
    return found


def checkout_copy(tmp_path: Path) -> Path:
    """The checkout's files in a temporary folder, its .venv linked: where a block runs."""
    copy = tmp_path / "clone"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED, symlinks=True)  # copy2: ./dev sees .venv up to date
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def as_pasted(block: str, ports: dict[int, int]) -> str:
    """The block as the test pastes it: its ports changed to free ones; `./dev test` (this very suite,
    which CI runs) left out."""
    lines = [line for line in block.splitlines() if line.split("  #")[0].strip() != "./dev test"]
    return PORT.sub(lambda m: m.group(1) + str(ports[int(m.group(2))]), "\n".join(lines) + "\n")


def paste(block: str, where: str, workdir: Path, after: str) -> subprocess.CompletedProcess:
    """One bash process, the block pasted whole, then ``after`` (what a user does once it has run: look
    at the result), then its background servers stopped, as `kill %1 %2` does."""
    text = ERR_TRAP + block + after + "\ntrap - ERR\nkill $(jobs -p) 2>/dev/null\nwait\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELNYX_")}
    shell = subprocess.Popen(
        ["bash", "-c", text], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = shell.communicate(timeout=100)  # below pytest-timeout: the group is killed below
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever the block left running, when it failed
            os.killpg(shell.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(where, shell.returncode, out, err)


class UsersServers:
    """The ports the docs name, held as a user's own servers would hold them while the blocks run; each
    connection is counted and closed at once (a client never waits on it). A port already in use is a
    user's real server: left alone (the blocks run on other ports anyway)."""

    def __init__(self) -> None:
        self.reached: list[int] = []  # the ports something connected to
        self._stop = threading.Event()
        self._threads = []
        for port in DOCS_PORTS:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen(8)
            except OSError:
                sock.close()
                continue
            sock.settimeout(0.05)
            thread = threading.Thread(target=self._serve, args=(sock, port), name=f"users-{port}")
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket, port: int) -> None:
        with sock:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    sock.accept()[0].close()
                    self.reached.append(port)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.fixture(scope="class")
def users_servers():
    servers = UsersServers()
    yield servers
    servers.close()


# What each block's text says it prints, and the files it says it makes
def prints_a_demo_that_worked(done: subprocess.CompletedProcess, workdir: Path) -> None:
    assert "\nresult: OK\n" in done.stdout, done.stdout[-3000:]
    assert "(open it now: it closes when the demo ends)" in done.stdout  # no terminal here: it says so
    named = re.findall(r"README\.md, '([^']+)'", done.stdout)  # "next": where to read on
    assert named and all(f"\n## {name}\n" in README for name in named), named
    assert len(list((workdir / "out" / "demo").glob("*.wav"))) == 3  # its own run's files, in the copy: the
    # caller, what the bot received (the caller's track only) and what the caller heard of the bot


def prints_a_stream_and_records_both_sides(done: subprocess.CompletedProcess, workdir: Path) -> None:
    answer = [line for line in done.stdout.splitlines() if line.startswith('{"data"')]
    assert answer and json.loads(answer[-1])["data"], done.stdout  # script.py prints Telnyx's JSON
    (played,) = (workdir / "out" / "played").glob("played-*.wav")  # what the caller heard
    with wave.open(str(played)) as recording:
        heard = recording.getnframes() / recording.getframerate()
    assert 1.0 <= heard < 3.0, heard  # the bot's 3 s greeting played until the caller cut in
    assert list((workdir / "out" / "rx").glob("*.wav"))  # what the server received


def prints_an_answer_a_line(done: subprocess.CompletedProcess, workdir: Path) -> None:
    lines = done.stdout.splitlines()
    answers = [json.loads(line) for line in lines]  # each curl's answer is JSON on a line of its own
    assert done.stdout.endswith("\n") and len(answers) == 1 + 9, lines  # the emulator's JSON line, 9 answers
    assert sum("call_control_id" in answer for answer in answers) >= 1 + 4 + 1  # ready, 4 calls made, the state
    assert any("streams" in answer for answer in answers)  # the call's state


def prints_lint_and_writes_the_schema(done: subprocess.CompletedProcess, workdir: Path) -> None:
    # ruff's verdict, then mypy's when ruff passed (whether the code passes is ./dev test's lint stages' call)
    assert "All checks passed!" in done.stdout or re.search(r"Found \d+ error", done.stdout), done.stdout
    assert "Success: no issues found" in done.stdout or "!! exit 1 from: ./dev lint" in done.stderr
    assert "script.schema.json written" in done.stdout
    assert json.loads((workdir / "script.schema.json").read_text())["properties"]


# A block, by what it runs -> what it prints, what the user waits for before looking at it, and the
# commands whose failure is not the block's (the code's lint is judged by ./dev test's own stages)
EXPECTED = {
    "./dev demo": (prints_a_demo_that_worked, "", ()),
    "--talk": (
        prints_a_stream_and_records_both_sides,
        "\nfor _ in $(seq 600); do ls out/played/played-*.wav >/dev/null 2>&1 && break; sleep 0.1; done",
        (),
    ),
    "_emulator/faults": (prints_an_answer_a_line, "", ()),
    "./dev schema": (prints_lint_and_writes_the_schema, "", ("./dev lint",)),
}


class TestEveryShellBlock:
    @pytest.mark.parametrize(("where", "block"), BLOCKS, ids=[where for where, _ in BLOCKS])
    def test_runs_pasted_whole_and_prints_what_its_text_says(self, where, block, users_servers, tmp_path):
        (check, after, may_fail), *more = [EXPECTED[key] for key in EXPECTED if key in block] or [(None, "", ())]
        assert check is not None and not more, f"{where}: add what this block prints to EXPECTED"
        before = files_in(ROOT / "out")
        workdir = checkout_copy(tmp_path)
        pasted = as_pasted(block, {port: free_port() for port in DOCS_PORTS})
        assert not {int(port) for _, port in PORT.findall(pasted)} & set(DOCS_PORTS)
        done = paste(pasted, where, workdir, after)
        failed = [line for line in done.stderr.splitlines() if line.startswith("!! exit")]
        failed = [line for line in failed if line.split(" from: ", 1)[1] not in may_fail]
        assert not failed, f"{where}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        check(done, workdir)
        # the user's things: their servers' ports and their runs' files
        assert not users_servers.reached, f"{where} connected to the user's port(s) {users_servers.reached}"
        assert files_in(ROOT / "out") == before, f"{where} changed the checkout's out/"

    def test_the_ports_the_docs_name_are_the_users(self):
        assert {8080, 8765} <= set(DOCS_PORTS)  # the README's emulator and stream server


# the run's own bound below, not the suite's 120 s: with the SDK's venv (after ./dev bench) each SDK start takes seconds
@pytest.mark.timeout(320)
def test_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--cold-runs", "1", "--warm-calls", "20", "--silence-calls", "1"]
    done = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cold start" in done.stdout and out.exists()
    silence = json.loads(out.read_text())["silence"]
    assert silence["answer+stream, 1 step (shipped)"]["processes_per_call"] == 1  # bench's count, per call
    assert silence["the same, every event a job"]["processes_per_call"] > 1
