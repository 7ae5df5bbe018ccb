"""The CLI, as cron or a shell script runs it: JSON on stdout, errors on stderr, distinct exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
from conftest import KEY, ROOT, URL

import script

MODE = "process"


@pytest.fixture(autouse=True, params=["process", "in-process"])
def mode(request, monkeypatch):
    """Every CLI test twice: `python script.py ...` as cron runs it, and script.cli(argv) in this
    process (the same code, where mutation testing can see which tests reach it)."""
    global MODE
    MODE = request.param
    for name in [k for k in os.environ if k.startswith("TELNYX_")]:
        monkeypatch.delenv(name)
    yield


def run(*args, key=KEY, base=None, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELNYX_")}
    if key is not None:
        env["TELNYX_API_KEY"] = key
    if base is not None:
        env["TELNYX_BASE_URL"] = base
    if MODE == "process":
        done = subprocess.run(
            [sys.executable, str(ROOT / "script.py"), *args],
            capture_output=True,
            text=True,
            env=env,
            input=stdin,
            timeout=60,
        )
    else:
        done = in_process(list(args), env, stdin)
    assert KEY not in done.stdout + done.stderr
    return done


def in_process(argv, env, stdin):
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_stdin = dict(os.environ), sys.stdin
    os.environ.clear()
    os.environ.update(env)
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = script.cli(argv)
            except SystemExit as exit:  # argparse's own errors and --help
                code = exit.code if isinstance(exit.code, int) else 2
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdin = saved_stdin
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def test_success_prints_telnyx_json(emulator):
    call = emulator.create_call()
    done = run(call, "--body", json.dumps({"stream_url": URL}), base=emulator.base_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"data": {"result": "ok"}}
    assert emulator.call(call).streams_started == 1


def test_body_file_and_stdin(emulator, tmp_path):
    path = tmp_path / "body.json"
    path.write_text(json.dumps({"stream_url": URL, "stream_track": "both_tracks"}))
    first, second = emulator.create_call(), emulator.create_call()
    assert run(first, "--body-file", str(path), base=emulator.base_url).returncode == 0
    assert run(second, "--body-file", "-", base=emulator.base_url, stdin=path.read_text()).returncode == 0
    assert [emulator.call(c).streams[0].params["stream_track"] for c in (first, second)] == ["both_tracks"] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["v3:x", "--body", "{not json"], "body is not valid JSON"),
        (["v3:x", "--body", '{"stream_trak": "both_tracks"}'], "did you mean 'stream_track'"),
        (["v3:x", "--body-file", "/nonexistent/body.json"], "cannot read"),
        ([], "call_control_id is missing"),
        (["a b", "--body", '{"stream_url": "wss://x"}'], "call_control_id contains spaces"),
    ],
)
def test_input_errors_exit_2_and_send_nothing(emulator, args, message):
    done = run(*args, base=emulator.base_url)
    assert done.returncode == script.EXIT_INPUT == 2
    assert message in done.stderr and done.stdout == ""
    assert emulator.backend.requests == []


def test_missing_key_exit_2(emulator):
    done = run("v3:x", "--body", '{"stream_url": "wss://x"}', key=None, base=emulator.base_url)
    assert done.returncode == 2 and "TELNYX_API_KEY" in done.stderr
    assert emulator.backend.requests == []


def test_api_error_exit_3_with_the_original_text(emulator):
    call = emulator.create_call()
    emulator.backend.hangup(call)
    done = run(call, "--body", json.dumps({"stream_url": URL}), base=emulator.base_url)
    assert done.returncode == script.EXIT_API == 3
    assert done.stderr.startswith("error: 422 {") and "90018" in done.stderr


def test_no_answer_exit_4(emulator):
    emulator.add_faults([{"kind": "delay", "seconds": 3}])
    call = emulator.create_call()
    done = run(
        call, "--body", json.dumps({"stream_url": URL}), "--timeout", "0.5", "--retries", "0", base=emulator.base_url
    )
    assert done.returncode == script.EXIT_NO_ANSWER == 4
    assert "no answer in time" in done.stderr


def test_help_explains_key_and_exit_codes():
    done = run("--help")
    assert done.returncode == 0
    for words in ("TELNYX_API_KEY", "TELNYX_BASE_URL", "--body-file", "Exit codes", "--timeout", "--retries"):
        assert words in done.stdout
