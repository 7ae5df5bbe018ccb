"""Never lose, never double, never hang: every fault the emulator can inject, counted exactly.

"Lost" is a call reported as started with no stream; "doubled" is a call with two streams.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import KEY, URL, closed_port, sent_bodies, start

import script


def command_ids(emulator, call):
    return [json.loads(r.body).get("command_id") for r in emulator.backend.requests if call in r.path]


def attempts_on(emulator, call):
    return sum(1 for r in emulator.backend.requests if call in r.path)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_retryable_status_then_success(emulator, status):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "status", "status": status}], call)
    result = start(call)
    assert result == {"data": {"result": "ok"}} and result.attempts == 2
    ids = command_ids(emulator, call)
    assert len(ids) == 2 and ids[0] == ids[1] == result.command_id
    assert emulator.call(call).streams_started == 1


@pytest.mark.parametrize("process", [False, True], ids=["before-processing", "answer-lost"])
def test_connection_reset(emulator, process):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "reset", "process": process}], call)
    result = start(call)
    assert result.attempts == 2 and attempts_on(emulator, call) == 2
    assert len(set(command_ids(emulator, call))) == 1
    assert emulator.call(call).streams_started == 1  # with the answer lost, Telnyx's dedupe saves us


@pytest.mark.parametrize("process", [False, True], ids=["slow-before", "slow-after-processing"])
def test_read_timeout_then_retry(emulator, process):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "delay", "seconds": 1.0, "process": process}], call)
    result = start(call, timeout_s=0.3)
    assert result.attempts == 2
    assert len(set(command_ids(emulator, call))) == 1
    assert emulator.call(call).streams_started == 1


def test_retry_after_is_honoured(emulator):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "status", "status": 429, "retry_after": 1}], call)
    began = time.monotonic()
    result = start(call)
    assert time.monotonic() - began >= 0.9
    assert result.attempts == 2 and emulator.call(call).streams_started == 1


def test_retry_after_beyond_the_deadline_fails_at_once(emulator):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "status", "status": 503, "retry_after": 120}], call)
    began = time.monotonic()
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call, deadline_s=3)
    assert time.monotonic() - began < 1.0  # it does not sleep into a wait it cannot finish
    assert info.value.status == 503 and info.value.attempts == 1
    assert emulator.call(call).streams_started == 0


def test_retries_exhausted(emulator):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "status", "status": 503}] * 3, call)
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call)
    error = info.value
    assert error.status == 503 and error.attempts == 3 == attempts_on(emulator, call)
    assert "3 attempt(s)" in str(error) and f"command_id={error.command_id}" in str(error)
    assert len(set(command_ids(emulator, call))) == 1
    assert emulator.call(call).streams_started == 0


def test_zero_retries_is_one_attempt(emulator):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "status", "status": 503}], call)
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call, max_retries=0)
    assert info.value.attempts == 1 == attempts_on(emulator, call)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_other_4xx_are_never_retried(emulator, status):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "status", "status": status, "retry_after": 0}], call)
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call)
    assert info.value.status == status and attempts_on(emulator, call) == 1


def test_redirect_is_not_followed_and_the_key_stays_home(emulator, httpserver):
    call = emulator.create_call()
    elsewhere = httpserver.url_for("/steal")
    emulator.add_faults([{"kind": "redirect", "location": elsewhere}], call)
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call)
    error = info.value
    assert error.status == 302 and error.attempts == 1
    assert "not followed" in str(error) and "localhost" in str(error)
    assert httpserver.log == []  # the other host never saw a request, let alone the key


def test_unreachable_api_is_a_clear_connection_error(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:{closed_port()}/v2")  # nothing listens
    with pytest.raises(script.TelnyxConnectionError) as info:
        start("v3:x", max_retries=1)
    error = info.value
    assert error.attempts == 2 and "could not reach Telnyx after 2 attempt(s)" in str(error)
    assert "Connection refused" in str(error) or "refused" in str(error).lower()


def test_slow_server_never_passes_the_deadline(emulator):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "delay", "seconds": 4}] * 5, call)
    began = time.monotonic()
    with pytest.raises(script.TelnyxConnectionError) as info:
        start(call, timeout_s=10, deadline_s=1.5)
    took = time.monotonic() - began
    assert took < 1.5 + 0.5, f"took {took:.2f} s with a 1.5 s deadline"
    assert "no answer in time" in str(info.value)


def test_deadline_bounds_retries_and_backoff(emulator):
    call = emulator.create_call()
    emulator.add_faults([{"kind": "delay", "seconds": 0.6}] * 10, call)
    began = time.monotonic()
    with pytest.raises(script.TelnyxConnectionError):
        start(call, timeout_s=0.5, deadline_s=1.2, max_retries=10)
    assert time.monotonic() - began < 1.2 + 0.5


def test_huge_answer_is_not_read_into_memory(api):
    api.expect_request("/v2/calls/c/actions/streaming_start").respond_with_data(b"x" * (3 << 20), status=200)
    with pytest.raises(script.TelnyxConnectionError, match="larger than 1048576 bytes"):
        script.main({"apiKey": KEY}, "c", {"stream_url": URL})


def test_200_calls_16_threads_random_faults(emulator):
    """Every call succeeds or fails clearly; exactly one stream per success; none lost or doubled."""
    rng = random.Random(20261125)
    menu = [
        [],
        [{"kind": "status", "status": 503}],
        [{"kind": "status", "status": 500}, {"kind": "status", "status": 502}],
        [{"kind": "status", "status": 429, "retry_after": 0}],
        [{"kind": "reset"}],
        [{"kind": "reset", "process": True}],
        [{"kind": "delay", "seconds": 0.5, "process": True}],
        [{"kind": "status", "status": 504}] * 3,  # exhausts the retries: a clear failure
        [{"kind": "reset", "process": True}, {"kind": "status", "status": 503}, {"kind": "status", "status": 503}],
    ]
    calls = []
    for _ in range(200):
        call = emulator.create_call()
        faults = rng.choice(menu)
        if faults:
            emulator.add_faults(faults, call)
        calls.append((call, faults))

    def one(call):
        try:
            return start(call, timeout_s=0.3), None
        except script.TelnyxError as error:
            return None, error

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(one, [c for c, _ in calls]))
    succeeded = failed = lost = doubled = 0
    for (call, faults), (result, error) in zip(calls, outcomes):
        streams = emulator.call(call).streams_started
        doubled += streams > 1
        assert len(set(command_ids(emulator, call))) == 1
        if result is not None:
            succeeded += 1
            lost += streams == 0
        else:
            failed += 1
            assert isinstance(error, (script.TelnyxAPIError, script.TelnyxConnectionError))
            assert "attempt(s)" in str(error) and "command_id=" in str(error)
            assert faults in (menu[7], menu[8]), f"{faults} should have succeeded: {error}"
    started = sum(emulator.call(call).streams_started for call, _ in calls)
    attempts = sum(1 for r in emulator.backend.requests if r.path.startswith("/v2/"))
    print(
        f"\n200 calls, {attempts} attempts: {succeeded} succeeded, {failed} failed clearly, "
        f"{started} streams started, {lost} lost, {doubled} doubled"
    )
    assert lost == 0 and doubled == 0
    expected_failures = sum(faults in (menu[7], menu[8]) for _, faults in calls)
    assert failed == expected_failures and succeeded == 200 - expected_failures


def test_connections_are_pooled_across_calls_and_threads(emulator):
    """One adapter per process: 12 calls from 4 threads open at most 4 connections (keep-alive)."""
    calls = [emulator.create_call() for _ in range(12)]
    before = emulator.connections_accepted

    def run(chunk):
        for call in chunk:
            start(call)

    threads = [threading.Thread(target=run, args=(calls[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent_bodies(emulator)) == 12
    assert 1 <= emulator.connections_accepted - before <= 4


def test_answer_cut_short_is_a_clear_error(monkeypatch):
    """Headers promise 100 bytes, the server sends 1 and closes: no unhandled urllib3 error."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        from rawserver import read_request

        connection, _ = server.accept()
        read_request(connection)  # all of it: closing with unread bytes would reset the connection instead
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        connection.shutdown(socket.SHUT_WR)
        connection.recv(1)  # until the client has read and closed
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}/v2")
    with pytest.raises(script.TelnyxConnectionError) as info:
        script.main({"apiKey": KEY}, "v3:x", {"stream_url": URL}, max_retries=0)
    assert str(info.value).startswith(
        "no usable answer after 1 attempt(s): the answer's body is cut short or misframed"
    )
    assert KEY not in str(info.value)
    server.close()
