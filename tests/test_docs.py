"""The README stays true: its two first commands exist, and it documents every body field."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

import script

README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    block = README.split("```")[1].strip().splitlines()
    assert [line.split()[0:2] for line in block] == [["./dev", "demo"], ["./dev", "test"]]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci


def test_readme_documents_every_field():
    for field in script.BODY_FIELDS:
        assert f"| `{field}` |" in README, f"{field} is missing from the README's table"


def test_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--cold-runs",
            "1",
            "--warm-calls",
            "20",
            "--silence-calls",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cold start" in done.stdout and out.exists()
    silence = json.loads(out.read_text())["silence"]
    assert silence["answer+stream, 1 step (shipped)"]["jobs_before_media"] == 1
    assert silence["answer, then start, 2 steps"]["jobs_before_media"] == 4
