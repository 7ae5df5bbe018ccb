"""The deadline holds for every call of a process, as a hostile counterpart would test it: calls the
deadline cuts share one pool with healthy calls on many threads; an https proxy (TLS inside TLS); TLS
that fails after the server read the request; a watchdog gone missing; threads that cannot start;
inputs and answers without bounds; one key after another. What "nothing was sent" means is decided
by the bytes written, and every other failure gives the command_id to run it again safely."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Mapping
from typing import Any

import pytest
from conftest import (
    CERT,
    KEY,
    ROOT,
    TRANSPORT_SETTINGS,
    URL,
    everything_said,
    internals,
    timed,
    tls_context,
    wait_until,
)
from proxies import TlsProxy
from rawserver import RawServer, answer, read_request, replying, silent

import script


@pytest.fixture(autouse=True)
def clean_environment(fresh_adapter, monkeypatch):
    for name in (*TRANSPORT_SETTINGS, "NO_PROXY", "no_proxy"):  # (the proxy test must not be bypassed)
        monkeypatch.delenv(name, raising=False)


DAMAGED: list[bytes] = []
RECEIVED: set[str] = set()  # every command_id drip_or_answer read, on any connection


def drip_or_answer(conn: socket.socket, request: bytes) -> None:
    """Keep-alive: a request whose command_id starts with "drip" gets its answer one byte every 20 ms
    (until the client hangs up); "edge" one byte every 0.4 to 2 ms, so that it ends around a 0.12 s
    deadline, just before or just after; any other gets its own answer at once, naming its command_id."""
    while request:
        try:
            command_id = json.loads(request.split(b"\r\n\r\n", 1)[1])["command_id"]
        except ValueError:  # a request cut while it was written: another call's cut reached this one
            DAMAGED.append(request)
            return
        RECEIVED.add(command_id)
        body = json.dumps({"data": {"answers": command_id}}).encode()
        whole = answer(200, [("Content-Type", "application/json")], body).replace(b"Connection: close\r\n", b"")
        if command_id.startswith(("drip", "edge")):
            pause = 0.02 if command_id.startswith("drip") else random.uniform(0.0004, 0.002)
            for byte in whole:
                conn.sendall(bytes([byte]))
                time.sleep(pause)
            if command_id.startswith("drip"):
                return
        else:
            conn.sendall(whole)
        request = read_request(conn, limit=30)


start = timed  # main() with this command_id: (its outcome, seconds)


def test_calls_the_deadline_cuts_never_touch_the_healthy_calls_beside_them(serve):
    server = serve(drip_or_answer)
    outcomes: dict[str, list] = {"cut": [], "healthy": []}
    barrier = threading.Barrier(16)

    def cut(worker: int) -> None:
        barrier.wait(10)
        for n in range(12):  # answers that end around the deadline, and answers the deadline always cuts
            command_id = f"{'edge' if n % 3 else 'drip'}-{worker}-{n}"
            outcomes["cut"].append((command_id, *start(command_id, deadline_s=0.12, max_retries=0)))

    def healthy(worker: int) -> None:
        barrier.wait(10)
        for n in range(40):
            command_id = f"ok-{worker}-{n}"
            outcomes["healthy"].append((command_id, *start(command_id, deadline_s=10, max_retries=2)))

    threads = [threading.Thread(target=cut, args=(w,)) for w in range(10)]
    threads += [threading.Thread(target=healthy, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes["healthy"]) == 240 and len(outcomes["cut"]) == 120
    for command_id, result, _ in outcomes["healthy"]:  # every healthy call got its own answer
        assert result == {"data": {"answers": command_id}}, (command_id, result)
    for command_id, result, took in outcomes["cut"]:  # each ended by its deadline: its own answer, or none
        assert took < 0.12 + 0.5, (command_id, took, result)
        if isinstance(result, script.TelnyxConnectionError):  # "nothing was sent" only when the server got nothing
            received = command_id in RECEIVED
            assert ("Nothing was sent" not in str(result)) if received else True, result
            assert f"pass body.command_id = {command_id!r}" in str(result) or not received, result
        else:
            assert command_id.startswith("edge") and result == {"data": {"answers": command_id}}, result
    assert server.connections < 240  # the healthy calls shared pooled connections
    assert DAMAGED == []  # and no request arrived cut


def test_an_https_proxy_cut_at_the_deadline_leaves_the_deadline_working_for_every_later_call(serve, monkeypatch):
    proxy = TlsProxy()
    try:
        dripping = serve(drip_or_answer, tls=tls_context())
        monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERT))
        result, _ = start("ok-through-the-proxy", max_retries=0)
        assert result == {"data": {"answers": "ok-through-the-proxy"}} and proxy.tunnels == 1  # TLS inside TLS
        for _ in range(2):  # cut twice: the first cut must not have disabled the deadline
            result, took = start("drip-through-the-proxy", deadline_s=1, max_retries=0)
            assert isinstance(result, script.TelnyxConnectionError) and took < 1.5, (took, result)
        monkeypatch.delenv("HTTPS_PROXY")
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        plain = serve(drip_or_answer)  # and a plain http server dripping afterwards
        monkeypatch.setenv("TELNYX_BASE_URL", plain.base_url)
        result, took = start("drip-plain", deadline_s=1, max_retries=0)
        assert isinstance(result, script.TelnyxConnectionError) and took < 1.5, (took, result)
        assert dripping.connections >= 2
    finally:
        proxy.close()


def tls_broken_after_the_request(conn: socket.socket, request: bytes) -> None:
    """The request was read whole over TLS; then plain text is written below TLS (a broken middlebox)."""
    os.write(conn.fileno(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_tls_failing_after_the_request_was_read_never_says_nothing_was_sent(serve, monkeypatch):
    server = serve(tls_broken_after_the_request, tls=tls_context())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERT))
    result, _ = start("c-tls", max_retries=2)
    assert len(server.requests) == 1 and b'"command_id":"c-tls"' in server.requests[0]  # Telnyx read it
    assert isinstance(result, script.TelnyxConnectionError)
    assert "Nothing was sent" not in str(result) and "pass body.command_id = 'c-tls'" in str(result)


def test_a_tls_handshake_that_fails_says_truly_that_nothing_was_sent(serve):
    server = serve(replying(b""), tls=tls_context())  # a certificate no CA here vouches for
    result, _ = start("c-hs", max_retries=0)
    assert server.requests == [] and "Nothing was sent to Telnyx (no byte of the request was written)" in str(result)


def test_when_telnyx_answered_and_the_deadline_ended_the_retries_the_error_is_its_answer(serve):
    answered = []

    def handler(conn: socket.socket, request: bytes) -> None:
        if not answered:  # the first attempt: 503, retry at once, this connection closes
            answered.append(request)
            conn.sendall(answer(503, [("Retry-After", "0")], b'{"errors": [{"code": "90000"}]}'))
        else:  # the retry: no answer until the deadline cuts it
            silent(5)(conn, request)

    serve(handler)
    result, took = start("c-503", deadline_s=1.0, max_retries=2)
    assert isinstance(result, script.TelnyxAPIError) and result.status == 503 and took < 1.5
    assert str(result).startswith('503 {"errors": [{"code": "90000"}]}')
    assert "deadline_s stopped the retries (the last attempt: deadline_s passed before an answer came)" in str(result)
    assert result.attempts == 2 and result.command_id == "c-503"


def test_a_deadline_spent_before_anything_was_written_says_so(serve):
    server = serve(replying(answer(200, [], b"{}")))
    result, _ = start("c-spent", deadline_s=1e-9)
    headline, advice, _ = str(result).split("\n")
    assert (
        headline
        == "no answer in time (timeout or deadline) after 0 attempt(s): deadline_s passed before the request was sent"
    )
    assert advice.startswith("deadline_s ran out before the request was written; raise deadline_s")
    assert "Telnyx did not answer" not in str(result) and server.connections == 0


def test_threads_that_cannot_start_never_escape_main_and_the_next_call_recovers(serve, tmp_path):
    server = serve(drip_or_answer)
    program = f"""
import json, sys, threading, time
sys.path.insert(0, {str(ROOT)!r})
import script
real = threading.Thread.start
def refuse(self):
    raise RuntimeError("can't start new thread")
threading.Thread.start = refuse  # the process has no thread to spare
auth, body = {{"apiKey": {KEY!r}}}, {{"stream_url": {URL!r}, "command_id": "ok-1"}}
print(json.dumps(script.main(auth, "v3:x", body, max_retries=0)))
began = time.monotonic()
try:  # the answer drips: with no thread to wait in, only the read timeouts hold, and each read gets a byte
    said = script.main(auth, "v3:x", dict(body, command_id="drip-1"), deadline_s=1, timeout_s=0.3, max_retries=0)
except script.TelnyxConnectionError as error:
    said = str(error)
print(json.dumps({{"ended_in": round(time.monotonic() - began, 2), "said": said}}))
threading.Thread.start = real
began = time.monotonic()
try:
    script.main(auth, "v3:x", dict(body, command_id="drip-2"), deadline_s=0.5, max_retries=0)
except script.TelnyxConnectionError:
    print(json.dumps({{"ended_in": round(time.monotonic() - began, 2)}}))
"""
    env = {**os.environ, "TELNYX_BASE_URL": server.base_url}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    first, second, third = (json.loads(line) for line in done.stdout.splitlines())
    assert first == {"data": {"answers": "ok-1"}}
    assert second["said"] == {"data": {"answers": "drip-1"}}  # no thread: no RuntimeError, the call ends
    assert third["ended_in"] < 1.0  # threads again: the deadline holds again


class Endless(Mapping):
    """A Mapping whose keys never end."""

    def __getitem__(self, key: Any) -> Any:
        return 1

    def __iter__(self):
        n = 0
        while True:
            n += 1
            yield f"key-{n}"

    def __len__(self) -> int:
        return 10**9


def test_an_object_whose_keys_never_end_is_refused_before_memory_grows():
    tracemalloc.start()
    try:
        with pytest.raises(script.TelnyxInputError) as refused:
            script.check_body(Endless())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(refused.value) == "body has more than 64 keys: no streaming_start object has that many."
    assert peak < 1 << 20
    with pytest.raises(script.TelnyxInputError, match=r"^body\.custom_parameters has 1001 items: at most 1000\.$"):
        script.check_body({"stream_url": URL, "custom_parameters": [{"name": "a", "value": "b"}] * 1001})


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="this Python reads integers of any length")
def test_a_huge_integer_in_an_answer_is_named_for_what_it_is(serve):
    digits = sys.get_int_max_str_digits() + 700
    serve(replying(answer(200, [("Content-Type", "application/json")], b'{"data": {"n": ' + b"7" * digits + b"}}")))
    result, _ = start("c-big", max_retries=0)
    assert isinstance(result, script.TelnyxAPIError) and result.status == 200
    limit = sys.get_int_max_str_digits()
    assert f"but the answer holds an integer of {digits} digits, more than Python reads ({limit})" in str(result)


def test_the_keys_kept_for_masking_are_the_last_32(serve):
    serve(replying(answer(200, [("Content-Type", "application/json")], b'{"data": {"result": "ok"}}')))
    keys = [f"KEY{n:04d}_0123456789abcdefTENANT" for n in range(100)]
    for key in keys:
        assert script.main({"apiKey": key}, "v3:x", {"stream_url": URL}, max_retries=0) == {"data": {"result": "ok"}}
    assert internals.keys_remembered() == keys[-32:]
    script.main({"apiKey": keys[-32]}, "v3:x", {"stream_url": URL}, max_retries=0)  # the oldest, used again
    assert internals.keys_remembered() == [*keys[-31:], keys[-32]]  # ... is the newest now
    result = everything_said(script.main({"apiKey": keys[0]}, "v3:x", {"stream_url": URL}, max_retries=0))
    assert keys[0] not in result and internals.keys_remembered()[-1] == keys[0]  # used again: the newest


def test_raw_server_handlers_end_with_the_test():
    """(the raw server cuts every connection at exit: a handler waiting on a pooled one ends at once)"""
    server = RawServer(silent(30)).__enter__()
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(b"POST /v2 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        while not server.requests:
            time.sleep(0.01)
        began = time.monotonic()
        server.__exit__(None, None, None)
        assert time.monotonic() - began < 1.0


def test_a_process_that_has_seen_no_key_still_masks_anything_shaped_like_one():
    program = f"""
import logging, sys
sys.path.insert(0, {str(ROOT)!r})
import script
logging.basicConfig(level=logging.DEBUG, format="%(message)s", stream=sys.stdout)
logging.getLogger("urllib3.connectionpool").debug("shape %s, xxxx and plain", "KEYABCDEF0123_abcdefghijklmnopqrst")
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.stdout == "shape ***, xxxx and plain\n", done.stdout + done.stderr


def test_a_key_of_any_shape_once_used_is_masked_in_logs(caplog):
    caplog.set_level("DEBUG")
    other = "sk_live_0123456789abcdefghij"  # not shaped like a Telnyx key: masked because it was used
    internals.mask_in_logs(other)
    import logging

    logging.getLogger("urllib3.connectionpool").debug("echo %s", other)
    assert "echo ***" in caplog.text and other not in caplog.text


def test_a_log_record_that_cannot_be_formatted_is_passed_on_not_dropped():
    import logging

    class Recorder(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)  # (a real handler would report the formatting error itself)

    logger = logging.getLogger("urllib3.connectionpool")
    recorder, level, propagate = Recorder(), logger.level, logger.propagate
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.debug("%d", "not a number")
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)
        logger.propagate = propagate
    assert [r.msg for r in recorder.records] == ["%d"]


HTML_2XX = (
    "Telnyx answered 200, so the command was most likely accepted, but the answer is not JSON: check "
    "TELNYX_BASE_URL before running it again. The command may have reached Telnyx: to run it again without "
    "risking a second stream, pass body.command_id = '{}'."
)


def test_a_2xx_answer_that_is_not_json_says_so_word_for_word(serve):
    serve(replying(answer(200, [], b"<html>ok</html>")))
    result, _ = start("c-html", max_retries=0)
    assert str(result).split("\n")[1] == HTML_2XX.format("c-html")


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="this Python reads integers of any length")
def test_digits_up_to_the_limit_are_no_huge_integer(serve):
    serve(replying(answer(200, [], b"<p>" + b"7" * sys.get_int_max_str_digits() + b"</p>")))
    result, _ = start("c-edge", max_retries=0)
    assert str(result).split("\n")[1] == HTML_2XX.format("c-edge")


class Held:
    """What the attempt sees of a connection: its socket (a real one, one end of a socket pair)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


def test_a_deadline_passing_just_after_the_attempt_finished_cuts_nothing():
    ours, peer = socket.socketpair()
    with ours, peer:
        attempt = internals.attempt(time.monotonic() - 1)  # its deadline has passed
        attempt.reached(requested=True, sock=ours)
        attempt.finish()  # it finished first: the connection may be back in the pool
        attempt.cut_now()  # the clock, late
        ours.sendall(b"still open")
        assert peer.recv(10) == b"still open" and attempt.cut is False


def test_a_cut_attempt_never_connects_nor_writes_again():
    ours, peer = socket.socketpair()
    with ours, peer:
        attempt = internals.attempt(time.monotonic() - 1)
        attempt.reached(connecting="now", sock=ours)
        assert attempt.sent() is False  # connecting: nothing of the request has left
        assert attempt.cut_now() is True and peer.recv(10) == b""  # the peer sees the end at once
        for late in ({"connecting": "done"}, {"requested": True}):
            with pytest.raises(OSError):  # connected after the deadline, or about to write: refused
                attempt.reached(**late)
        attempt.reached(connecting="failed")  # a failure is still taken
        assert attempt.sent() is False  # nothing was written, and it is known


def test_a_socket_set_after_the_deadline_is_cut_as_it_is_set():
    """A name lookup the deadline overtook answers late: the connection it opens is cut at once."""
    ours, peer = socket.socketpair()
    with ours, peer:
        attempt = internals.attempt(time.monotonic() - 1)
        assert attempt.cut_now() is False  # a name lookup under way: no socket to cut yet
        with pytest.raises(OSError):
            attempt.reached(sock=ours)
        assert peer.recv(10) == b""


def test_the_request_may_have_left_unless_there_is_evidence_it_did_not():
    attempt = internals.attempt(time.monotonic() + 10)
    assert attempt.sent() is True  # no hook reported anything (a library that no longer calls them): maybe sent
    attempt.reached(requested=True)  # plain http connects inside request(): the request begins, then connecting
    attempt.reached(connecting="now")
    assert attempt.sent() is False
    attempt.reached(connecting="failed")
    assert attempt.sent() is False  # the connection failed: the request never left
    again = internals.attempt(time.monotonic() + 10)
    again.reached(connecting="done")
    assert again.sent() is False  # connected, not written yet
    again.reached(requested=True)
    assert again.sent() is True


def test_a_failure_is_looked_for_16_causes_deep_and_no_deeper():
    def chain(depth: int) -> BaseException:
        error: BaseException = ConnectionRefusedError(111, "refused")
        for n in range(depth):
            outer = RuntimeError(f"wrapper {n}")
            outer.__cause__ = error
            error = outer
        return error

    assert internals.classify(chain(15), False)[0] == "connect"  # the 16th link: found
    assert internals.classify(chain(16), False)[0] == "other"  # the 17th: not looked at


def test_with_no_key_used_yet_text_shaped_like_a_key_is_still_masked(monkeypatch, caplog):
    import logging

    internals.forget_keys(monkeypatch)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug("shape %s, xxxx and plain", "KEYABCDEF0123_abcdefghijklmnopqrst")
    assert [r.getMessage() for r in caplog.records] == ["shape ***, xxxx and plain"]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_either_ca_bundle_setting_is_named_when_tls_fails(serve, monkeypatch, short_path, variable):
    serve(replying(b""), tls=tls_context())
    (short_path / "empty.pem").write_text("")
    monkeypatch.setenv(variable, str(short_path / "empty.pem"))
    result, _ = start("c-ca", max_retries=0)
    assert str(result).startswith(
        f"could not reach Telnyx after 1 attempt(s): TLS failed (the CA bundle '{short_path}/empty.pem': "
    )


def test_a_proxy_url_of_an_unknown_scheme_is_named(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")
    monkeypatch.setenv("HTTPS_PROXY", "ftp://127.0.0.1:9")
    result, _ = start("c-ftp", max_retries=2)
    assert str(result).startswith("could not reach Telnyx after 1 attempt(s): HTTPS_PROXY is not a proxy URL\n")


def test_an_unforeseen_failure_shows_at_most_120_characters_of_its_text():
    kind, detail, sent = internals.classify(KeyError("k" * 300), False)
    assert (kind, sent) == ("other", False) and detail == "KeyError: " + "k" * 117 + "..."  # 120 in all


def test_a_deadline_passing_as_the_pool_takes_the_connection_back_never_reaches_another_call(serve, monkeypatch):
    """The worst moment, made to happen every time: the answer is read and its connection is back in the
    pool (urllib3's _put_conn, wrapped here) when the deadline passes, so the clock cuts a pooled
    connection. No other call ever holds it: each calling thread has a pool of its own, and this
    thread's next call sees the connection closed and opens another."""
    import urllib3.connectionpool

    cut = threading.Event()

    def answer_then_see_the_cut(conn: socket.socket, request: bytes) -> None:
        while request:
            command_id = json.loads(request.split(b"\r\n\r\n", 1)[1])["command_id"]
            body = json.dumps({"data": {"answers": command_id}}).encode()
            conn.sendall(answer(200, [], body).replace(b"Connection: close\r\n", b""))
            request = read_request(conn, limit=30)
        if command_id == "ok-worst":
            cut.set()  # the client shut this connection down after its answer

    server = serve(answer_then_see_the_cut)
    assert start("ok-first", max_retries=0)[0] == {"data": {"answers": "ok-first"}}
    ours = internals.pool_for(server.base_url)  # this thread's pool, holding that connection
    put_conn = urllib3.connectionpool.HTTPConnectionPool._put_conn
    armed = threading.Event()

    def deadline_passes_now(pool: Any, conn: Any) -> None:
        put_conn(pool, conn)
        if pool is ours and armed.is_set():
            armed.clear()
            assert cut.wait(10)  # the answer is read, its connection pooled: the clock cuts it now

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "_put_conn", deadline_passes_now)
    answers: list[Any] = []
    beside = threading.Thread(target=lambda: answers.extend(start(f"ok-beside-{n}")[0] for n in range(20)))
    beside.start()  # calls on another thread, to the same server, throughout
    armed.set()
    result, took = start("ok-worst", deadline_s=0.3, max_retries=0)
    beside.join(30)
    assert isinstance(result, script.TelnyxConnectionError) and took < 0.8, (took, result)  # cut: not trusted
    assert "pass body.command_id = 'ok-worst'" in str(result)  # written: it may have reached Telnyx
    assert start("ok-after", max_retries=0)[0] == {"data": {"answers": "ok-after"}}
    assert answers == [{"data": {"answers": f"ok-beside-{n}"}} for n in range(20)]  # never touched
    assert server.connections == 3  # ours, the one beside (reused 20 times), and ours again after the cut
    assert DAMAGED == []


def test_a_connect_that_finishes_after_its_deadline_is_never_handed_to_another_call(serve, monkeypatch):
    server = serve(drip_or_answer)
    real = socket.getaddrinfo
    slow = threading.Event()

    def resolver(host, port, *args, **kwargs):  # the first lookup takes 0.6 s: the deadline (0.3 s) cuts it
        if host == "localhost" and not slow.is_set():
            slow.set()
            time.sleep(0.6)
        return real("127.0.0.1" if host == "localhost" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://localhost:{server.port}/v2")
    result, _ = start("ok-late", deadline_s=0.3, max_retries=0)
    assert isinstance(result, script.TelnyxConnectionError)
    while server.connections < 1:  # the abandoned connect arrives at the server, late
        time.sleep(0.01)
    assert start("ok-next", max_retries=0)[0] == {"data": {"answers": "ok-next"}}
    assert server.connections == 2  # the next call opened its own: the late one was never used


def test_the_bounds_hold_at_their_edge_and_name_the_field():
    at_most = [{"name": "a", "value": "b"}] * 1000
    assert len(script.check_body({"stream_url": URL, "custom_parameters": at_most})["custom_parameters"]) == 1000
    with pytest.raises(script.TelnyxInputError) as many:
        script.check_body({"stream_url": URL, "custom_parameters": [*at_most, {"name": "c", "value": "d"}]})
    assert many.value.field == "body.custom_parameters"
    sixty_four = {f"k{n}": 1 for n in range(63)} | {"stream_url": URL}
    with pytest.raises(script.TelnyxInputError, match=r"^body has an unknown field 'k0'"):
        script.check_body(sixty_four)  # 64 keys are read: then the unknown ones are named
    with pytest.raises(script.TelnyxInputError) as sixty_five:
        script.check_body({**sixty_four, "k63": 1})
    assert (sixty_five.value.field, str(sixty_five.value)) == (
        "body",
        "body has more than 64 keys: no streaming_start object has that many.",
    )


def test_no_thread_of_the_script_outlives_its_call(serve):
    serve(drip_or_answer)
    ours = lambda: [t for t in threading.enumerate() if t.name.startswith("telnyx-")]  # noqa: E731
    assert start("ok-threads", max_retries=0)[0] == {"data": {"answers": "ok-threads"}}
    assert wait_until(lambda: not ours(), 1.0), ours()  # a healthy call: gone within a second
    result, took = start("drip-threads", deadline_s=0.2, max_retries=1)
    assert isinstance(result, script.TelnyxConnectionError) and took < 0.7
    assert wait_until(lambda: not ours(), 1.0), ours()  # the attempt the deadline cut ends too
