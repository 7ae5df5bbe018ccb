"""The CLI, as cron or a shell script runs it: JSON on stdout, errors on stderr, distinct exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import KEY, ROOT, URL
from rawserver import answer, replying, silent

import script_cli

MODE = "process"


@pytest.fixture(autouse=True, params=["process", "in-process"])
def mode(request, monkeypatch):
    """Every CLI test twice: `python script.py ...` as cron runs it, and script_cli.cli(argv) in this
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
                code = script_cli.cli(argv)
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
    assert done.returncode == script_cli.EXIT_INPUT == 2
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
    assert done.returncode == script_cli.EXIT_API == 3
    assert done.stderr.startswith("error: 422 {") and "90018" in done.stderr


def test_no_answer_exit_4(emulator):
    emulator.add_faults([{"kind": "delay", "seconds": 3}])
    call = emulator.create_call()
    done = run(
        call, "--body", json.dumps({"stream_url": URL}), "--timeout", "0.5", "--retries", "0", base=emulator.base_url
    )
    assert done.returncode == script_cli.EXIT_NO_ANSWER == 4
    assert "no answer in time" in done.stderr


def test_help_explains_key_and_exit_codes():
    done = run("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps to the terminal's width
    for words in (
        "usage: script.py [-h] [--body BODY | --body-file PATH] [--timeout TIMEOUT] [--deadline DEADLINE] "
        "[--retries RETRIES] [--print-schema] [call_control_id]",
        "[call_control_id] Start streaming a live Telnyx call's audio to your WebSocket server. positional",
        "call_control_id data.payload.call_control_id of call.answered",
        "--body BODY the streaming_start body as JSON",
        "--body-file PATH read the body from a JSON file ('-' for stdin)",
        "--timeout TIMEOUT seconds per attempt (default 10)",
        "--deadline DEADLINE seconds in all, retries included (default 20)",
        "--retries RETRIES retries after a failed attempt (default 2)",
        "--print-schema print script.schema.json and exit",
        "The API key is read from TELNYX_API_KEY; TELNYX_BASE_URL overrides the API address. Exit codes: 0 ok, "
        "2 bad input (nothing sent), 3 Telnyx answered with an error, 4 no answer. Example: TELNYX_API_KEY=KEY... "
        'python script.py v3:abc --body \'{"stream_url": "wss://example.com/media"}\'',
    ):
        assert words in text, words


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["v3:x", "--body", "{nope"], None, "error: body is not valid JSON (Expecting property name enclosed in"),
        (["v3:x", "--body", "[" * 100_000], None, "error: body is nested too deep to be a streaming_start body."),
        (["v3:x", "--body-file", "/no/such/file.json"], None, "error: --body-file: cannot read /no/such/file.json: "),
        (["v3:x", "--body-file", "-"], "[1,", "error: body is not valid JSON"),
        (["--body", "{}"], None, "error: call_control_id is missing: python script.py CALL_CONTROL_ID --body JSON"),
    ],
)
def test_body_and_argument_errors_exit_2_with_their_message(emulator, args, stdin, message):
    before = len(emulator.backend.requests)
    done = run(*args, base=emulator.base_url, stdin=stdin)
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert len(emulator.backend.requests) == before


def test_a_body_file_that_is_not_utf8_exits_2_naming_the_file(emulator, tmp_path):
    path = tmp_path / "body.json"
    path.write_bytes(b'{"stream_url": "wss://x.example/\xff"}')
    done = run("v3:x", "--body-file", str(path), base=emulator.base_url)
    assert done.returncode == 2
    assert done.stderr == f"error: --body-file: {path} is not UTF-8 text: save it as UTF-8 JSON.\n"


def test_print_schema_writes_the_form_file_exactly():
    done = run("--print-schema")
    assert done.returncode == 0
    assert done.stdout == (ROOT / "script.schema.json").read_text()


def test_deadline_and_timeout_reach_main(serve):
    import time

    server = serve(silent(15))
    started = time.monotonic()
    done = run(
        "c", "--body", json.dumps({"stream_url": URL}), "--timeout", "12", "--deadline", "0.5", base=server.base_url
    )
    assert done.returncode == 4 and "no answer in time" in done.stderr
    # --deadline held (0.5 s, plus the process's start, slow on a loaded machine), not --timeout (12 s)
    assert time.monotonic() - started < 8


CLI_FIX = (
    "export TELNYX_API_KEY=KEY... in this shell (your Telnyx API key, from portal.telnyx.com > Account settings > "
    "Keys)."
)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "TELNYX_API_KEY is missing or empty."),
        ("  ", "TELNYX_API_KEY is missing or empty."),
        ("KEYshort", "TELNYX_API_KEY is 8 characters: a Telnyx API key is longer. Copy the whole key."),
        (
            "KEY0123456789abcdef ghij",
            "TELNYX_API_KEY contains spaces, quotes, line breaks or non-ASCII characters (not shown). Copy the key "
            "again.",
        ),
    ],
)
def test_a_bad_key_says_exactly_what_is_wrong_and_how_to_set_it(key, reason):
    done = run("v3:x", "--body", json.dumps({"stream_url": URL}), key=key)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {reason} {CLI_FIX}\n"


def test_swapped_arguments_speak_of_the_argument_and_the_variable():
    done = run(KEY, "--body", json.dumps({"stream_url": URL}))
    assert done.returncode == 2
    assert done.stderr == (
        "error: The CALL_CONTROL_ID argument is your API key (not shown): the two look swapped. Pass the call's "
        "call_control_id as the argument, and the key in TELNYX_API_KEY.\n"
    )


@pytest.mark.parametrize("body", [[], ["--body", "{}"], ["--body", '{"stream_track": "both_tracks"}']])
def test_a_body_that_streams_nothing_is_refused_before_sending(serve, body):
    server = serve(silent(1))
    done = run("v3:x", *body, base=server.base_url)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: body.stream_url is missing: with no stream_url and enable_dialogflow")
    assert server.connections == 0


def test_a_refused_key_is_told_in_the_shells_words(emulator):
    call = emulator.create_call()
    done = run(
        call, "--body", json.dumps({"stream_url": URL}), key="KEYwrong_0123456789abcdefXYZ", base=emulator.base_url
    )
    assert done.returncode == 3
    assert "Authentication failed: TELNYX_API_KEY is wrong or revoked." in done.stderr
    assert "export TELNYX_API_KEY=KEY... again" in done.stderr and "resource" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["v3:x", "--timeout", KEY],
        ["v3:x", "--deadline", KEY],
        ["v3:x", "--retries", KEY],
        ["v3:x", "--body-file", KEY],
        ["v3:x", "--body-file", f"/tmp/{KEY}/body.json"],
        ["v3:x", KEY],
    ],
    ids=["timeout", "deadline", "retries", "body-file", "a path holding it", "an extra argument"],
)
def test_the_key_pasted_into_any_argument_is_never_echoed(args):
    done = run(*args)  # run() asserts the key is in neither stdout nor stderr
    assert done.returncode == 2 and done.stdout == ""
    assert "not shown" in done.stderr, done.stderr


def test_an_answer_holding_a_number_json_cannot_write_prints_json(serve):
    body = b'{"data": {"result": "ok", "huge": 1e400}}'
    server = serve(replying(answer(200, [("Content-Type", "application/json")], body)))
    done = run("v3:x", "--body", json.dumps({"stream_url": URL}), base=server.base_url)
    assert done.returncode == 0
    assert json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"not JSON: {name}")) == {
        "data": {"result": "ok", "huge": None}
    }


def test_the_exported_script_run_alone_says_where_its_command_line_is(tmp_path):
    alone = tmp_path / "f" / "telnyx" / "streaming_start.py"
    alone.parent.mkdir(parents=True)
    alone.write_text((ROOT / "script.py").read_text())
    done = subprocess.run(
        [sys.executable, str(alone), "v3:x"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "This is the Windmill script alone: its command line (python script.py CALL_CONTROL_ID --body JSON) is "
        "script_cli.py, in the project's checkout beside script.py. Run it from a clone of the project.\n"
    )


PARAMETERS = re.compile(r"\b(timeout_s|deadline_s|max_retries)\b")  # main's names; the user typed options


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "601"], "--timeout"),
        (["--deadline", "-1"], "--deadline"),
        (["--deadline", "nan"], "--deadline"),
        (["--retries", "11"], "--retries"),
        (["--retries", "-1"], "--retries"),
    ],
)
def test_a_refused_option_is_named_as_the_user_typed_it(serve, args, option):
    server = serve(silent(1))
    done = run("v3:x", "--body", json.dumps({"stream_url": URL}), *args, base=server.base_url)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: {option} "), done.stderr
    assert not PARAMETERS.search(done.stderr), done.stderr
    assert server.connections == 0


def test_the_advice_of_no_answer_names_the_options(serve):
    server = serve(silent(5))
    done = run(
        "v3:x", "--body", json.dumps({"stream_url": URL}), "--timeout", "0.3", "--retries", "0", base=server.base_url
    )
    assert done.returncode == 4 and server.connections == 1
    assert not PARAMETERS.search(done.stderr), done.stderr
    assert "--timeout" in done.stderr or "--deadline" in done.stderr, done.stderr


def test_telnyxs_own_words_are_quoted_as_they_came(serve):
    """A hostile answer that holds the parameters' names: only the script's advice is translated."""
    text = b'{"errors": [{"code": "10011", "detail": "max_retries, deadline_s and timeout_s are ours"}]}'
    server = serve(replying(answer(429, [("Content-Type", "application/json")], text)))
    done = run("v3:x", "--body", json.dumps({"stream_url": URL}), "--retries", "0", base=server.base_url)
    assert done.returncode == 3
    assert done.stderr.startswith("error: 429 " + text.decode()), done.stderr
    assert not PARAMETERS.search(done.stderr.replace(text.decode(), "")), done.stderr


def test_https_to_a_plain_http_server_says_it_speaks_plain_http(emulator):
    call = emulator.create_call()
    base = emulator.base_url.replace("http://", "https://", 1)
    done = run(call, "--body", json.dumps({"stream_url": URL}), "--retries", "0", base=base)
    assert done.returncode == 4
    assert "plain HTTP" in done.stderr, done.stderr
    assert "CA_BUNDLE" not in done.stderr  # none is set: no advice about one
    assert emulator.call(call).streams_started == 0
