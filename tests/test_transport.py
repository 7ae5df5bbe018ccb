"""The transport's settings, each by what it does on the wire: TLS verification and the CA bundle
settings, the connect timeout and the deadline while connecting, the backoff between retries, and the
connection pool's bounds. Servers are raw sockets on 127.0.0.1 (tests/rawserver.py)."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import AUTH, CERT, KEY, TRANSPORT_SETTINGS, URL, tls_context
from rawserver import RawServer, answer, keep_alive, replying

import script

OK = b'{"data":{"result":"ok"}}'
KEPT_ALIVE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n" + OK


@pytest.fixture(autouse=True)
def clean_environment(fresh_adapter, monkeypatch):
    for name in TRANSPORT_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def call(**kwargs: Any) -> Any:
    return script.main(AUTH, "v3:t", {"stream_url": URL, "command_id": "c1"}, **kwargs)


# -- TLS: verified against the system's CAs, or REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE ----------------
def test_a_certificate_no_ca_vouches_for_is_refused_before_the_key_is_sent(serve):
    server = serve(replying(answer(200, [("Content-Type", "application/json")], OK)), tls=tls_context())
    with pytest.raises(script.TelnyxConnectionError) as info:
        call(max_retries=0)
    assert (
        str(info.value).split("\n")[0]
        == "could not reach Telnyx after 1 attempt(s): TLS failed (self-signed certificate)"
    )
    assert server.requests == []  # the handshake failed: no request, no Authorization header, was sent


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_setting_is_the_trust_store(serve, monkeypatch, variable):
    server = serve(replying(answer(200, [("Content-Type", "application/json")], OK)), tls=tls_context())
    monkeypatch.setenv(variable, str(CERT))
    assert call(max_retries=0) == {"data": {"result": "ok"}}
    (request,) = server.requests
    assert f"Bearer {KEY}".encode() in request


# -- connecting: min(3.05 s, timeout_s, what is left of deadline_s) ----------------------------------
@pytest.mark.parametrize(
    ("timeout_s", "deadline_s", "expected"),
    [(10, 20, 3.05), (1, 20, 1.0), (10, 1, 1.0)],
    ids=["the 3.05 s connect limit", "timeout_s", "deadline_s"],
)
def test_connecting_waits_the_least_of_3_05_s_timeout_and_deadline(
    monkeypatch, unanswered_port, timeout_s, deadline_s, expected
):
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:{unanswered_port}/v2")
    began = time.monotonic()
    with pytest.raises(script.TelnyxConnectionError) as info:
        call(timeout_s=timeout_s, deadline_s=deadline_s, max_retries=0)
    took = time.monotonic() - began
    assert expected - 0.05 <= took < expected + 1.0, f"connecting took {took:.2f} s, expected {expected} s"
    first, advice, _ = str(info.value).split("\n")
    # the connect timeout or the deadline, whichever comes first: either way nothing was sent
    assert first in (
        "could not reach Telnyx after 1 attempt(s): no connection (connecting timed out)",
        "no answer in time (timeout or deadline) after 1 attempt(s): deadline_s passed before an answer came",
    )
    assert advice.endswith(
        "Nothing was sent to Telnyx (no byte of the request was written), so running it again is safe."
    )


# -- backoff: none before the first retry, then 0.5, 1, 2, 4 s (+ up to 0.25 s jitter), at most 4 s ---
def test_backoff_between_retries_doubles_from_half_a_second_to_4_s(serve):
    """The waits as the server sees them: the gaps between the attempts' arrivals (nothing patched)."""
    arrivals: list[float] = []

    def handler(conn, request):
        arrivals.append(time.monotonic())
        conn.sendall(answer(503, [("Content-Type", "application/json")], b"{}"))

    server = serve(handler)
    with pytest.raises(script.TelnyxAPIError) as info:
        call(max_retries=5, deadline_s=30)
    assert info.value.attempts == 6 == server.connections == len(arrivals)
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    slack = 0.15  # one attempt's own time on a loaded machine
    assert gaps[0] < slack  # the first retry goes at once
    for gap, base in zip(gaps[1:4], (0.5, 1.0, 2.0)):
        assert base <= gap <= base + 0.25 + slack, gaps
    assert max(gap - base for gap, base in zip(gaps[1:4], (0.5, 1.0, 2.0))) > 0.01, gaps  # jittered: workers spread out
    assert 4.0 <= gaps[4] <= 4.0 + slack, gaps  # the cap holds, jitter included


def test_giving_up_before_a_backoff_the_deadline_cannot_hold_word_for_word(serve):
    serve(replying(answer(503, [("Content-Type", "application/json")], b"{}")))
    with pytest.raises(script.TelnyxAPIError) as info:
        call(max_retries=5, deadline_s=0.4)  # the retry at once goes; the next one's 0.5 s would not fit
    assert str(info.value).split("\n") == [
        "503 {}",
        "Gave up after 2 attempt(s): deadline_s would pass before a retry. The command may have reached Telnyx: "
        "to run it again without risking a second stream, pass body.command_id = 'c1'.",
        "(command_id=c1, attempts=2)",
    ]


# -- the pools: one per calling thread, its connection reused, pools for at most 4 hosts -------------
def test_each_calling_thread_keeps_its_connection_for_its_next_call(serve):
    burst = 33
    server = serve(keep_alive(KEPT_ALIVE, threading.Barrier(burst)))  # every answer waits for all 33
    with ThreadPoolExecutor(burst) as pool:  # all 33 at once, so each thread makes one call a round
        for _ in range(2):
            results = list(pool.map(lambda _: call(max_retries=0), range(burst)))
            assert results == [{"data": {"result": "ok"}}] * burst
    assert server.connections == burst  # 33 opened, each reused by its thread in the second round


def test_connections_are_kept_for_the_4_hosts_used_last(monkeypatch):
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(RawServer(keep_alive(KEPT_ALIVE))) for _ in range(5)]
        for server in [*servers[:4], servers[0], servers[4], servers[1], servers[0]]:
            monkeypatch.setenv("TELNYX_BASE_URL", server.base_url)
            assert call(max_retries=0) == {"data": {"result": "ok"}}
        # the fifth host pushed out the one used longest ago (servers[1]); servers[0] was reused throughout
        assert [s.connections for s in servers] == [1, 2, 1, 1, 1]


def test_one_retry_is_enough_to_get_a_command_id_and_both_attempts_carry_it(serve):
    import json

    answers = iter([answer(503, [], b"{}"), answer(200, [("Content-Type", "application/json")], OK)])
    server = serve(lambda conn, request: conn.sendall(next(answers)))
    result = script.main(AUTH, "v3:t", {"stream_url": URL}, max_retries=1)
    ids = [json.loads(r.partition(b"\r\n\r\n")[2])["command_id"] for r in server.requests]
    assert len(ids) == 2 and ids[0] == ids[1] == result.command_id and len(ids[0]) == 36
