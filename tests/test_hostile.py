"""The promises against a hostile server and hostile input (issue 10's reproductions, each a test):
the deadline bounds the whole call, reading included; whatever the server answers, main returns or
raises one of three errors; bad input is a TelnyxInputError with nothing sent; the key never shows,
whoever echoes it. The servers are raw sockets on 127.0.0.1 (tests/rawserver.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import tracemalloc
from collections import UserDict
from typing import Any

import pytest
from conftest import KEY, ROOT, URL, everything_said
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rawserver import RawServer, answer, hung_up, replying

import script

OK = b'{"data":{"result":"ok"}}'
THREE = (script.TelnyxInputError, script.TelnyxAPIError, script.TelnyxConnectionError)


pytestmark = pytest.mark.usefixtures("fresh_adapter")  # each test builds the adapter anew (conftest)


def run(**kwargs: Any) -> tuple[Any, float]:
    """main() against the served answer; (result or error, seconds)."""
    started = time.monotonic()
    try:
        outcome: Any = script.main({"apiKey": KEY}, "v3:hostile", {"stream_url": URL, "command_id": "c1"}, **kwargs)
    except script.TelnyxError as error:
        outcome = error
    return outcome, time.monotonic() - started


def drip(data: bytes, every: float) -> Any:
    """Send one byte, then wait `every` (or until the client hangs up), and so on."""

    def handler(conn: Any, request: bytes) -> None:
        for i in range(len(data)):
            conn.sendall(data[i : i + 1])
            if hung_up(conn, every):
                return

    return handler


# -- never hangs: the deadline bounds the whole call, reading included ----------------------------
@pytest.mark.parametrize(
    "data",
    [
        answer(200, [("Content-Type", "application/json"), ("X-Pad", "a" * 300)], OK),  # drips the headers
        answer(200, [("Content-Type", "application/json")], b" " * 300 + OK),  # headers at once, drips the body
    ],
    ids=["headers", "body"],
)
def test_a_dripping_server_is_cut_off_at_the_deadline(serve, data):
    head_end = data.index(b"\r\n\r\n") + 4
    if b"X-Pad" in data:
        handler = drip(data, 0.05)  # 15 s in all, a byte every 50 ms: the read timeout never fires
    else:

        def handler(conn: Any, request: bytes) -> None:
            conn.sendall(data[:head_end])
            drip(data[head_end:], 0.05)(conn, request)

    serve(handler)
    outcome, took = run(timeout_s=1, deadline_s=1.5, max_retries=0)
    assert isinstance(outcome, script.TelnyxConnectionError), outcome
    assert "no answer in time" in str(outcome)
    assert took < 2.5, f"the call took {took:.1f} s against a 1.5 s deadline"


def test_a_dripping_server_is_cut_off_across_retries(serve):
    serve(drip(answer(503, [("X-Pad", "a" * 300)]), 0.05))
    outcome, took = run(timeout_s=1, deadline_s=1.5, max_retries=3)
    assert isinstance(outcome, script.TelnyxConnectionError)
    assert took < 2.5


def test_a_huge_redirect_body_is_neither_read_nor_waited_for(serve):
    size = 64 << 20

    def handler(conn: Any, request: bytes) -> None:
        conn.sendall(answer(302, [("Location", "http://127.0.0.2:1/steal"), ("Content-Length", str(size))]))
        chunk = b"x" * (1 << 16)
        for _ in range(size // len(chunk)):
            conn.sendall(chunk)
            server.sent += len(chunk)

    server = serve(handler)
    tracemalloc.start()
    try:
        outcome, took = run(timeout_s=5, deadline_s=2, max_retries=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, script.TelnyxConnectionError) and "larger than 1048576" in str(outcome)
    assert str(outcome).startswith("no usable answer after 1 attempt(s)")
    assert took < 1.5
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB allocated for an answer that is refused"
    assert server.sent < 24 << 20, "the whole body was read"


def test_a_gzip_bomb_is_refused_without_inflating_it(serve):
    """~200 KiB of gzip that inflates to 200 MiB: urllib3 below 2.6 inflated it whole before the cap."""
    import gzip

    bomb = gzip.compress(b"\0" * (200 << 20), compresslevel=9)
    assert len(bomb) < 250 << 10
    serve(replying(answer(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], bomb)))
    tracemalloc.start()
    try:
        outcome, _ = run(max_retries=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, script.TelnyxConnectionError) and "larger than 1048576" in str(outcome)
    assert peak < 16 << 20, f"{peak / 2**20:.1f} MiB allocated for a refused answer"


# -- only three error types, whatever the server answers -----------------------------------------
ODD_ANSWERS = {
    "charset=bogus": (answer(200, [("Content-Type", "application/json; charset=bogus")], OK), 200),
    "charset=idna": (answer(200, [("Content-Type", "application/json; charset=idna")], OK), 200),
    "text/json without charset, UTF-8": (
        answer(200, [("Content-Type", "text/json")], '{"data":{"result":"ok","city":"Zürich"}}'.encode()),
        200,
    ),
    "422 nested 100000 deep": (answer(422, [("Content-Type", "application/json")], b"[" * 100_000), 422),
    "302 Location http://[::1": (answer(302, [("Location", "http://[::1")]), 302),
    "300 Location http://[": (answer(300, [("Location", "http://[")]), 300),
    "302 Location not UTF-8": (answer(302, [("Location", b"http://\xff\xfe.example/x")]), 302),
    "503 Retry-After 5000 digits": (answer(503, [("Retry-After", "9" * 5000)]), 503),
    "503 Retry-After year 10000": (answer(503, [("Retry-After", "Wed, 21 Oct 10000 07:28:00 GMT")]), 503),
    "503 Retry-After soon": (answer(503, [("Retry-After", "soon")]), 503),
}


@pytest.mark.parametrize("name", list(ODD_ANSWERS))
def test_odd_answers_end_as_a_result_or_an_api_error_with_the_status(serve, name):
    data, status = ODD_ANSWERS[name]
    serve(replying(data))
    outcome, took = run(timeout_s=2, deadline_s=5, max_retries=1)
    assert took < 3
    if status == 200:
        assert outcome["data"]["result"] == "ok"  # decoded as UTF-8, as the original's fetch does
        if "city" in outcome["data"]:
            assert outcome["data"]["city"] == "Zürich"
    else:
        assert isinstance(outcome, script.TelnyxAPIError), outcome
        assert outcome.status == status and str(outcome).startswith(f"{status} ")
    if name.startswith("503"):
        assert outcome.attempts == 2  # an unreadable Retry-After is no reason to stop retrying


def test_an_answer_larger_than_the_cap_is_refused_at_the_boundary(serve):
    """1 MiB is read; one byte more is refused (the cap is `>`, not `>=`)."""
    body = b'"' + b"a" * ((1 << 20) - 2) + b'"'
    server = serve(replying(answer(200, [("Content-Type", "application/json")], body)))
    outcome, _ = run(max_retries=0)
    assert outcome == "a" * ((1 << 20) - 2)
    server.handler = replying(answer(200, [("Content-Type", "application/json")], body + b" "))
    outcome, _ = run(max_retries=0)
    assert isinstance(outcome, script.TelnyxConnectionError) and "larger than 1048576" in str(outcome)


# -- bad input: a TelnyxInputError naming the field, nothing sent -------------------------------
def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def cyclic() -> dict:
    body: dict = {"stream_url": URL}
    body["custom_parameters"] = [body]
    return body


class Unhashable(UserDict):
    def items(self):  # a Mapping whose keys cannot be put in a dict
        return [(["a", "list"], "value")]


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refused")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: ("c", cyclic(), {}), "body.custom_parameters[0].custom_parameters[0]"),
        (lambda: ("c", {"custom_parameters": nested(100_000)}), "body.custom_parameters"),
        (lambda: ("c", {"stream_url": URL, "stream_bidirectional_sampling_rate": 10**5000}), None),
        (lambda: ("c", {"stream_url": URL, 10**5000: 1}), "body"),
        (lambda: ("c", {"stream_url": URL}, {"timeout_s": 10**5000}), "timeout_s"),
        (lambda: ("c", {"stream_url": URL}, {"max_retries": 10**5000}), "max_retries"),
        (lambda: ("c", Unhashable()), "body"),
        (lambda: ("c", {"stream_url": URL, "client_state": BadRepr()}), "body.client_state"),
        (lambda: ("c", {"stream_url": URL, "custom_parameters": [{"name": "a", "value": BadRepr()}]}), None),
    ],
    ids=[
        "cycle",
        "100000 deep",
        "huge int value",
        "huge int key",
        "huge timeout",
        "huge retries",
        "unhashable",
        "bad repr",
        "bad repr nested",
    ],
)
def test_hostile_input_is_refused_by_field_and_nothing_is_sent(serve, call, field):
    server = serve(replying(answer(200, [], OK)))
    args = call()
    call_id, body, kwargs = (*args, {})[:3]
    with pytest.raises(script.TelnyxInputError) as info:
        script.main({"apiKey": KEY}, call_id, body, **kwargs)
    assert server.connections == 0
    if field is not None:
        assert info.value.field.startswith(field), info.value.field
    assert info.value.field and info.value.field.split(".")[0].split("[")[0] in ("body", "timeout_s", "max_retries")


def cli(*args: str, env: dict | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "script.py"), *args],
        capture_output=True,
        input=stdin,
        env={**os.environ, "TELNYX_API_KEY": KEY, **(env or {})},
        timeout=60,
    )


def test_cli_refuses_a_body_nested_100000_deep_with_exit_2(tmp_path):
    done = cli("v3:x", "--body", "[" * 100_000, env={"TELNYX_BASE_URL": "http://127.0.0.1:9/v2"})
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert b"body" in done.stderr


def test_cli_refuses_a_body_file_that_is_not_utf8_with_exit_2(tmp_path):
    path = tmp_path / "body.json"
    path.write_bytes(b'{"stream_url": "wss://x.example/\xff"}')
    done = cli("v3:x", "--body-file", str(path), env={"TELNYX_BASE_URL": "http://127.0.0.1:9/v2"})
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert b"UTF-8" in done.stderr


# -- the key never shows, whoever echoes it -------------------------------------------------------
def escaped(text: str) -> str:
    """The key as a JSON escape hides it: \\u004b for K, and so on."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


def test_key_echoed_in_x_request_id_is_masked(serve):
    serve(replying(answer(422, [("x-request-id", KEY), ("Content-Type", "application/json")], b'{"errors":[]}')))
    outcome, _ = run(max_retries=0)
    assert isinstance(outcome, script.TelnyxAPIError) and outcome.request_id == "***"
    assert KEY not in everything_said(outcome)


def test_key_echoed_in_x_request_id_is_masked_on_the_cli(serve):
    server = serve(replying(answer(422, [("x-request-id", KEY)], b"{}")))
    done = cli("v3:x", "--body", '{"stream_url": "wss://x.example"}', env={"TELNYX_BASE_URL": server.base_url})
    assert done.returncode == 3
    assert KEY.encode() not in done.stderr + done.stdout


def test_key_in_a_redirect_location_is_masked_in_any_case(serve):
    serve(replying(answer(302, [("Location", f"http://[fe80::1%{KEY}]/x")])))
    outcome, _ = run(max_retries=0)
    assert isinstance(outcome, script.TelnyxAPIError) and outcome.status == 302
    assert KEY.lower() not in everything_said(outcome).lower()


def test_key_hidden_in_json_escapes_is_masked_in_errors_hints_and_results(serve):
    hidden = escaped(KEY)
    body = f'{{"errors":[{{"code":"1","title":"{hidden}","detail":"d {hidden}","source":{{"pointer":"/{hidden}"}}}}]}}'
    body = body.encode()
    server = serve(replying(answer(422, [("Content-Type", "application/json")], body)))
    outcome, _ = run(max_retries=0)
    assert isinstance(outcome, script.TelnyxAPIError)
    assert outcome.errors[0]["title"] == "***" and outcome.errors[0]["source"]["pointer"] == "/***"
    assert KEY not in everything_said(outcome) and KEY not in json.dumps(json.loads(outcome.response_text))
    server.handler = replying(answer(200, [], f'{{"data":{{"result":"{hidden}"}}}}'.encode()))
    outcome, _ = run(max_retries=0)
    assert outcome == {"data": {"result": "***"}}


def test_key_in_an_unparseable_header_line_is_never_logged(serve, caplog):
    caplog.set_level(logging.DEBUG)
    serve(
        replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Echo " + KEY.encode() + b"\r\nConnection: close\r\n\r\n{}")
    )
    outcome, _ = run(max_retries=0)
    assert isinstance(outcome, THREE)
    assert KEY not in caplog.text + everything_said(outcome)
    assert caplog.records, "nothing was logged: the check would prove nothing"


def test_an_echoed_authorization_header_is_masked(serve):
    def echo(conn: Any, request: bytes) -> None:
        conn.sendall(answer(400, [("Content-Type", "text/plain")], request))

    serve(echo)
    outcome, _ = run(max_retries=0)
    assert isinstance(outcome, script.TelnyxAPIError) and "Bearer ***" in str(outcome)
    assert KEY not in everything_said(outcome)


def test_swapped_arguments_are_refused_without_sending_or_logging_the_key(serve, caplog):
    caplog.set_level(logging.DEBUG)
    server = serve(replying(answer(200, [], OK)))
    with pytest.raises(script.TelnyxInputError, match="swapped") as info:
        script.main({"apiKey": KEY}, KEY, {"stream_url": URL})
    assert info.value.field == "call_control_id" and server.connections == 0
    assert KEY not in caplog.text + everything_said(info.value)


def test_a_short_key_is_refused_rather_than_masked_into_the_data():
    with pytest.raises(script.TelnyxInputError, match="characters") as info:
        script.main({"apiKey": "k"}, "v3:x", {"stream_url": URL})
    assert info.value.field == "auth.apiKey"


# -- environment: http goes to loopback only, never through a proxy -------------------------------
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_http_to_loopback_never_goes_through_a_proxy(serve, monkeypatch, variable):
    proxy = RawServer(replying(answer(200, [], OK))).__enter__()
    try:
        target = serve(replying(answer(200, [], OK)))
        monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.port}")
        outcome, _ = run(max_retries=0)
        assert outcome == {"data": {"result": "ok"}}
        assert proxy.connections == 0 and target.connections == 1
    finally:
        proxy.__exit__(None, None, None)


def test_https_through_a_proxy_is_tunnelled_so_the_proxy_never_reads_the_key(monkeypatch):
    with RawServer(replying(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("TELNYX_BASE_URL", "https://127.0.0.1:1/v2")
        outcome, _ = run(max_retries=0)
    assert isinstance(outcome, script.TelnyxConnectionError)
    (request,) = proxy.requests
    assert request.startswith(b"CONNECT 127.0.0.1:1 HTTP/1.")
    assert KEY.encode() not in request and b"Bearer" not in request


def test_a_proxy_dripping_its_connect_answer_is_cut_off_at_the_deadline(monkeypatch):
    """The deadline holds through an HTTPS_PROXY too: the tunnel's answer is read the same way."""
    proxy = RawServer(drip(b"HTTP/1.1 200 Connection established\r\nX-Pad: " + b"a" * 300 + b"\r\n\r\n", 0.05))
    with proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("TELNYX_BASE_URL", "https://127.0.0.1:1/v2")
        outcome, took = run(timeout_s=1, deadline_s=1.5, max_retries=0)
    assert isinstance(outcome, script.TelnyxConnectionError), outcome
    assert took < 2.5, f"{took:.1f} s against a 1.5 s deadline"


# -- fuzzing the server's answers ------------------------------------------------------------------
header_names = st.sampled_from(
    [
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "Content-Encoding",
        "Location",
        "Retry-After",
        "x-request-id",
        "X-Odd",
    ]
)
header_values = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "text/json",
            "text/plain; charset=latin-1",
            "application/json; charset=bogus",
            "application/json; charset=utf-16",
            "charset=idna",
            "chunked",
            "gzip",
            "deflate",
            "br",
            "0",
            "-1",
            "99999999999999999999",
            "http://[::1",
            "soon",
            "9" * 300,
            "Wed, 21 Oct 10000 07:28:00 GMT",
            "{KEY}",
            "http://[fe80::1%{KEY}]/",
            "",
        ]
    ),
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            OK,
            b"",
            b"\xef\xbb\xbf" + OK,
            b"[" * 5000,
            b"null",
            b'"ok"',
            b"[1,2]",
            b"NaN",
            b'{"errors":[{"code":"90018","title":"ended"}]}',
            b'{"errors":[{"code":10011,"source":{"pointer":"/x"}}]}',
            b'{"errors":"no"}',
            b'{"data":"{KEY}"}',
            b'{"t":"{ESCAPED}"}',
            b"{AUTH}",
        ]
    ),
)
statuses = st.one_of(st.integers(min_value=100, max_value=599), st.sampled_from([200, 204, 302, 422, 429, 503]))


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 150), deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    status=statuses,
    headers=st.lists(st.tuples(header_names, header_values), max_size=5),
    body=bodies,
    timing=st.sampled_from(["at once"] * 8 + ["stall after the headers", "drip"]),
    retries=st.integers(min_value=0, max_value=1),
)
def test_fuzzed_answers_end_as_a_result_or_one_of_three_errors_in_time_without_the_key(
    status, headers, body, timing, retries
):
    def fill(value: Any, request: bytes) -> bytes:
        raw = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
        auth = next((line for line in request.split(b"\r\n") if line.lower().startswith(b"authorization")), b"")
        return raw.replace(b"{KEY}", KEY.encode()).replace(b"{ESCAPED}", escaped(KEY).encode()).replace(b"{AUTH}", auth)

    def handler(conn: Any, request: bytes) -> None:
        data = answer(status, [(n, fill(v, request)) for n, v in headers], fill(body, request))
        if timing == "at once":
            conn.sendall(data)
        elif timing == "drip":
            drip(data[:40], 0.02)(conn, request)
        else:
            conn.sendall(data[: data.index(b"\r\n\r\n") + 4])
            hung_up(conn, 3.0)  # a broken deadline would wait this long

    with RawServer(handler) as server:
        os.environ["TELNYX_BASE_URL"] = server.base_url
        try:
            outcome, took = run(timeout_s=0.4, deadline_s=0.6, max_retries=retries)
        finally:
            del os.environ["TELNYX_BASE_URL"]
    event(f"{type(outcome).__name__}")
    assert took < 0.6 + 1.0, f"{took:.2f} s against a 0.6 s deadline"
    if isinstance(outcome, script.TelnyxAPIError):
        assert str(outcome).startswith(f"{outcome.status} ")
    assert not isinstance(outcome, script.TelnyxInputError)
    assert KEY.lower() not in everything_said(outcome).lower()
