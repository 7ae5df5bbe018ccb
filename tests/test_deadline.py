"""The deadline is the caller's clock: every phase bounded (name lookup, every address,
answers, framing), 1xx answers never taken as the answer, no call reading another's answer (pool, fork), the 1 MiB
cap held by every framing, each failure named once, the key out of every output, hostile Python
inputs refused in bounded time and memory. Real servers on 127.0.0.1 (tests/rawserver.py); the
resolver, which no test may replace for the machine, is slowed by wrapping socket.getaddrinfo."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import logging
import os
import socket
import threading
import time
import tracemalloc

import pytest
from conftest import AUTH, KEY, ROOT, URL, everything_said, internals
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawserver import answer, read_request, replying

import script
import script_cli

pytestmark = pytest.mark.usefixtures("fresh_adapter")
OK = b'{"data":{"result":"ok"}}'
SLACK = 0.5  # what the README promises past deadline_s
THREE = (script.TelnyxInputError, script.TelnyxAPIError, script.TelnyxConnectionError)
EXAMPLES = None  # (each example waits up to a deadline: the counts stay small, also under ./dev mutate)


def outcome(**kwargs):
    """main() against TELNYX_BASE_URL: (result or error, seconds)."""
    started = time.monotonic()
    try:
        result = script.main(AUTH, "v3:dl", {"stream_url": URL, "command_id": "c1"}, **kwargs)
    except script.TelnyxError as error:
        result = error
    return result, time.monotonic() - started


# -- name lookup and dead addresses are inside the deadline -----------------------------------------
@contextlib.contextmanager
def slow_resolver(monkeypatch, delay: float, addresses: list[tuple[str, int]] | None = None):
    """getaddrinfo that takes `delay` seconds (a resolver timing out), then answers the real lookup,
    or `addresses` (a host with several addresses)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "telnyx.test":
            time.sleep(delay)
            if addresses is not None:
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", a) for a in addresses]
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


@settings(max_examples=EXAMPLES or 6, deadline=None, suppress_health_check=list(HealthCheck))
@given(delay=st.floats(0.6, 4.0), deadline_s=st.floats(0.3, 1.5), retries=st.integers(0, 2))
def test_a_slow_resolver_ends_by_the_deadline(monkeypatch, delay, deadline_s, retries):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")
        with slow_resolver(patch, delay):
            result, took = outcome(deadline_s=deadline_s, max_retries=retries)
    assert isinstance(result, script.TelnyxConnectionError), result
    assert took <= deadline_s + SLACK, f"{took:.2f} s with deadline_s={deadline_s:.2f} and a {delay:.2f} s resolver"
    assert "Nothing was sent to Telnyx" in str(result)  # it never got past the name lookup


@settings(max_examples=EXAMPLES or 4, deadline=None, suppress_health_check=list(HealthCheck))
@given(dead=st.integers(2, 6), deadline_s=st.floats(0.5, 1.5))
def test_many_dead_addresses_end_by_the_deadline(monkeypatch, unanswered_port, dead, deadline_s):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TELNYX_BASE_URL", f"https://telnyx.test:{unanswered_port}/v2")
        with slow_resolver(patch, 0, [("127.0.0.1", unanswered_port)] * dead):
            result, took = outcome(deadline_s=deadline_s, timeout_s=10, max_retries=1)
    assert isinstance(result, script.TelnyxConnectionError), result
    assert took <= deadline_s + SLACK, f"{took:.2f} s for {dead} dead addresses, deadline_s={deadline_s:.2f}"


def test_a_deadline_spent_before_the_first_request_sends_nothing_and_counts_no_attempt(serve):
    server = serve(replying(answer(200, [], OK)))
    result, _ = outcome(deadline_s=1e-9)
    assert str(result).split("\n") == [
        "no answer in time (timeout or deadline) after 0 attempt(s): deadline_s passed before the request was sent",
        "deadline_s ran out before the request was written; raise deadline_s or check the network. Nothing was "
        "sent to Telnyx (no byte of the request was written), so running it again is safe.",
        "(command_id=c1, attempts=0)",
    ]
    assert server.connections == 0


# -- 1xx answers, the pool and fork: no call ever reads another call's answer --------------------------
def interim(*statuses: int) -> bytes:
    return b"".join(f"HTTP/1.1 {s} Interim\r\nLink: </x>; rel=preload\r\n\r\n".encode() for s in statuses)


def numbered_answers():
    """Keep-alive answers, each naming the request it answers (its command_id), after 1xx answers
    taken from the request's own command_id ("c-103-102" sends 103 then 102 first)."""

    def handler(conn, request):
        while request:
            body = json.loads(request.split(b"\r\n\r\n", 1)[1])
            statuses = [int(s) for s in body["command_id"].split("-")[1:] if s.isdigit()]
            final = json.dumps({"data": {"answers": body["command_id"]}}).encode()
            conn.sendall(interim(*statuses) + answer(200, [], final).replace(b"Connection: close\r\n", b""))
            request = read_request(conn)

    return handler


@settings(max_examples=EXAMPLES or 12, deadline=None, suppress_health_check=list(HealthCheck))
@given(sequences=st.lists(st.lists(st.sampled_from([100, 102, 103, 150, 199]), max_size=3), min_size=2, max_size=4))
def test_an_interim_answer_is_refused_never_taken_as_the_answer_and_each_call_reads_its_own(serve, sequences):
    """http.client skips a 100; any other 1xx would be read as the answer: it is refused as unusable, its
    connection closed (the real answer behind it is never read by a later call)."""
    server = serve(numbered_answers())
    for sequence in sequences:
        command_id = "-".join(["c", *map(str, sequence)])
        try:
            result = script.main(AUTH, "v3:x", {"stream_url": URL, "command_id": command_id}, max_retries=0)
        except script.TelnyxConnectionError as error:
            result = str(error)
        interim_answers = [s for s in sequence if s != 100]
        if interim_answers:
            assert result.startswith(
                f"no usable answer after 1 attempt(s): the answer's status is {interim_answers[0]}"
            )
            assert f"pass body.command_id = {command_id!r}" in result  # it reached the server
        else:
            assert result == {"data": {"answers": command_id}}
    # one pooled connection, reused in step; a refused answer's connection is closed, the next call opens one
    assert server.connections == 1 + sum(any(s != 100 for s in sequence) for sequence in sequences[:-1])
    internals.drop_pooled_connections()  # so the server's handler ends at once
    server.__exit__(None, None, None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_forked_child_never_uses_the_parents_pooled_connection(serve):
    server = serve(numbered_answers())
    first = script.main(AUTH, "v3:x", {"stream_url": URL, "command_id": "c-parent"}, max_retries=0)
    assert first == {"data": {"answers": "c-parent"}} and server.connections == 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own call, its own answer, then exit without pytest's teardown
        try:
            got = script.main(AUTH, "v3:x", {"stream_url": URL, "command_id": "c-child"}, max_retries=0)
            os.write(write_end, json.dumps(got).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = json.loads(pipe.read() or "null")
    os.waitpid(pid, 0)
    again = script.main(AUTH, "v3:x", {"stream_url": URL, "command_id": "c-parent-again"}, max_retries=0)
    assert child == {"data": {"answers": "c-child"}}
    assert again == {"data": {"answers": "c-parent-again"}}
    assert server.connections == 2  # the child opened its own; the parent kept its own


# -- framing: the cap holds, a malformed answer is "no usable answer", not retried -------------------
def stacked_gzip(layers: int) -> bytes:
    data = OK
    for _ in range(layers):
        data = gzip.compress(data)
    return data


FRAMING = {
    # 12 MiB behind a negative chunk size: read whole, it would pass the 8 MiB peak the test allows
    "negative chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n" + b"x" * (12 << 20),
    "chunk size not hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "a 70 KB header line": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
    "no status line": b"garbage garbage\r\n\r\n",
    "an HTTP/0.9-looking answer": b"{}\r\n",
    "six stacked encodings": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip, gzip, gzip, gzip, gzip\r\nContent-Length: "
        + str(len(stacked_gzip(6))).encode()
        + b"\r\n\r\n"
        + stacked_gzip(6)
    ),
    "a body cut short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{",
    "a broken deflate body": b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: 4\r\n\r\nnope",
}


@pytest.mark.parametrize("name", list(FRAMING))
def test_malformed_answers_are_no_usable_answer_and_not_retried(serve, name):
    serve(replying(answer(200, [], OK)))
    assert outcome(max_retries=0)[0] == {"data": {"result": "ok"}}  # first-call imports stay out of the peak
    server = serve(replying(FRAMING[name]))
    tracemalloc.start()
    result, took = outcome(max_retries=2, deadline_s=5)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(result, script.TelnyxConnectionError), result
    first, advice, _ = str(result).split("\n")
    assert first.startswith("no usable answer after 1 attempt(s): "), first
    assert "Error:" not in first and "_HTTP" not in first  # our words, no private class names
    assert advice.startswith("Check TELNYX_BASE_URL. The command may have reached Telnyx")
    assert server.connections == 1 and took < 3
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB"


# -- each failure named once, with its setting -------------------------------------------------------
@pytest.mark.parametrize("content", ["", "not a certificate\n"])
def test_an_empty_or_non_pem_ca_bundle_is_named_and_not_retried(serve, monkeypatch, short_path, content):
    import ssl

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(ROOT / "tests" / "tls" / "127.0.0.1.pem", ROOT / "tests" / "tls" / "127.0.0.1.key")
    server = serve(replying(answer(200, [], OK)), tls)
    bundle = short_path / "bundle.pem"
    bundle.write_text(content)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    result, _ = outcome(max_retries=2)
    assert server.requests == []  # nothing reached the server
    first, advice, _ = str(result).split("\n")
    assert first.startswith(f"could not reach Telnyx after 1 attempt(s): TLS failed (the CA bundle '{bundle}': ")
    assert advice.startswith("Check REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE") and "Nothing was sent" in advice


def through_a_proxy_answering(status_line: bytes, monkeypatch: pytest.MonkeyPatch, max_retries: int):
    """main()'s outcome through an https proxy that answers every CONNECT with ``status_line``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    read_request(conn)
                    conn.sendall(status_line + b"\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        monkeypatch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
        return outcome(max_retries=max_retries)[0]
    finally:
        listener.close()


def test_a_proxy_asking_for_credentials_is_named(monkeypatch):
    result = through_a_proxy_answering(b"HTTP/1.1 407 Proxy Authentication Required", monkeypatch, max_retries=2)
    assert str(result).split("\n")[:2] == [
        "could not reach Telnyx after 1 attempt(s): the proxy refused to open a tunnel (Tunnel connection failed: "
        "407 Proxy Authentication Required)",
        "Check HTTPS_PROXY (its address and credentials), or unset it. Nothing was sent to Telnyx (no byte of "
        "the request was written), so running it again is safe.",
    ]


# -- the key never reaches stdout, stderr or a log, whatever the process's debug settings ------------
def test_http_client_debug_output_never_shows_the_key(serve, monkeypatch, capfd, caplog):
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)  # the usual recipe to debug requests
    caplog.set_level(logging.DEBUG)
    serve(replying(answer(200, [], OK)))
    result, _ = outcome(max_retries=0)
    assert result == {"data": {"result": "ok"}}
    printed = capfd.readouterr()
    assert KEY not in printed.out + printed.err + caplog.text


def test_a_call_control_id_holding_the_key_is_refused(serve):
    server = serve(replying(answer(200, [], OK)))
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(AUTH, f"v3:{KEY.lower()}-x", {"stream_url": URL})
    assert str(info.value).startswith("call_control_id contains your API key (not shown): remove it.")
    assert server.connections == 0 and KEY.lower() not in str(info.value).lower()


def test_another_tenants_key_in_an_answer_is_masked(serve):
    other = "KEY0123456789ABCDEF0123456789ABCDEF_OtherTenantSecret99"
    body = json.dumps({"errors": [{"code": "10009", "detail": f"key {other} is not yours"}]}).encode()
    serve(replying(answer(401, [("x-request-id", other)], body)))
    result, _ = outcome(max_retries=0)
    assert isinstance(result, script.TelnyxAPIError)
    assert other not in everything_said(result) and "key *** is not yours" in str(result)


def test_a_key_in_a_log_record_of_urllib3_is_masked_at_any_level(caplog):
    caplog.set_level(logging.DEBUG)
    internals.mask_in_logs(KEY)
    logging.getLogger("urllib3.connectionpool").debug("echo %s and %s", KEY, "KEYABCDEF0123_abcdefghijklmnopqrst")
    assert "echo *** and ***" in caplog.text and KEY not in caplog.text


@pytest.mark.parametrize("ending", ["#", "?", "?x=1", "#frag"])
def test_a_base_url_with_a_query_or_fragment_mark_is_refused(monkeypatch, ending):
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:9/v2{ending}")
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL})
    assert info.value.field == "TELNYX_BASE_URL"


# -- hostile Python callers: TelnyxInputError, bounded time and memory --------------------------------
class RaisingGet(dict):
    def get(self, *args):
        raise RuntimeError("no")


class Sneaky(str):
    def strip(self, *args):
        raise PermissionError("no")

    def isprintable(self):
        raise PermissionError("no")

    def encode(self, *args, **kwargs):
        raise PermissionError("no")

    def __str__(self):
        raise PermissionError("no")


def test_hostile_mappings_and_strings_are_input_errors_or_plain_values(serve):
    server = serve(replying(answer(200, [], OK)))
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(RaisingGet(apiKey=KEY), "v3:x", {"stream_url": URL})
    assert info.value.field == "auth"
    # str subclasses whose methods raise: read as the plain text they hold
    result = script.main({"apiKey": Sneaky(KEY)}, Sneaky("v3:x"), {Sneaky("stream_url"): Sneaky(URL)}, max_retries=0)
    assert result == {"data": {"result": "ok"}} and server.connections == 1


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("a 4 MiB unknown key", {"stream_url": URL, "x" * (4 << 20): 1}),
        ("1.4 MB of wrong items", {"stream_url": URL, "custom_parameters": [{"name": 1, "value": 2}] * 60_000}),
    ],
)
def test_huge_bad_bodies_are_refused_in_bounded_time_and_memory(serve, name, body):
    size = len(json.dumps(body))
    began = time.monotonic()
    with pytest.raises(script.TelnyxInputError):
        script.main(AUTH, "v3:x", body)
    took = time.monotonic() - began
    tracemalloc.start()  # (tracing slows Python down: memory is measured on a second run)
    with pytest.raises(script.TelnyxInputError):
        script.main(AUTH, "v3:x", body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * size + (8 << 20), f"{name}: {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB body"
    limit = 6.0 if os.environ.get("MUTANT_UNDER_TEST") else 1.5  # (./dev mutate's trampolines slow every call)
    assert took < limit, f"{name}: {took:.2f} s"


def test_a_2xx_holding_nan_is_not_json_and_the_cli_prints_only_json(serve, capsys, monkeypatch):
    monkeypatch.setenv("TELNYX_API_KEY", KEY)
    server = serve(replying(answer(200, [], b'{"data": {"result": NaN}}')))
    code = script_cli.cli(["v3:x", "--body", json.dumps({"stream_url": URL}), "--retries", "0"])
    printed = capsys.readouterr()
    assert code == script_cli.EXIT_API and printed.out == ""
    assert printed.err.startswith('error: 200 {"data": {"result": NaN}}')
    assert server.connections == 1


# -- what mutation testing showed unchecked ----------------------------------------------------------
def tls_server(serve):
    import ssl

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(ROOT / "tests" / "tls" / "127.0.0.1.pem", ROOT / "tests" / "tls" / "127.0.0.1.key")
    return serve(replying(answer(200, [], OK)), tls)


def test_an_untrusted_certificate_says_why_in_our_words(serve, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    tls_server(serve)
    first = str(outcome(max_retries=2)[0]).split("\n")[0]
    assert first == "could not reach Telnyx after 1 attempt(s): TLS failed (self-signed certificate)"


def test_an_empty_ca_bundle_names_the_reason(serve, monkeypatch, short_path):
    tls_server(serve)
    (short_path / "empty.pem").write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(short_path / "empty.pem"))
    first = str(outcome(max_retries=0)[0]).split("\n")[0]
    assert first == (
        f"could not reach Telnyx after 1 attempt(s): TLS failed (the CA bundle '{short_path / 'empty.pem'}': "
        "NO_CERTIFICATE_OR_CRL_FOUND)"
    )


def test_a_well_formed_chunked_answer_is_read_whole(serve):
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (b'{"data":', b'{"result":"ok"}}'))
    serve(
        replying(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    )
    assert outcome(max_retries=0)[0] == {"data": {"result": "ok"}}


def test_a_logged_traceback_with_a_key_is_dropped_and_the_message_masked(caplog):
    caplog.set_level(logging.DEBUG)
    internals.mask_in_logs(KEY)
    logger = logging.getLogger("urllib3.connectionpool")
    try:
        raise ValueError(f"header echo {KEY}")
    except ValueError as error:
        logger.warning("Failed to parse headers: %s", error, exc_info=True)
    (record,) = [r for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert (record.msg, record.args, record.exc_info, record.exc_text) == (
        "Failed to parse headers: header echo ***",
        None,
        None,
        None,
    )
    logger.info("clean %s", "text")  # a record without a key keeps its arguments and is not rewritten
    assert caplog.records[-1].args == ("text",) and caplog.records[-1].msg == "clean %s"


@pytest.mark.parametrize(
    ("extra", "hint"), [(30, "did you mean 'stream_bidirectional_sampling_rate'?"), (31, "check the spelling.")]
)
def test_a_near_field_name_gets_a_suggestion_up_to_64_characters(extra, hint):
    key = "stream_bidirectional_sampling_rate" + "x" * extra  # 64 characters, then 65
    with pytest.raises(script.TelnyxInputError) as info:
        script.check_body({"stream_url": URL, key: 1})
    assert hint in str(info.value)


def test_a_server_that_closes_without_answering_is_named_word_for_word(serve):
    def close_at_once(conn, request):
        conn.close()

    serve(close_at_once)
    assert str(outcome(max_retries=1)[0]).split("\n") == [
        "no answer after 2 attempt(s): the connection was closed (no answer)",
        "The connection was closed before an answer came; check the network. The command may have reached Telnyx: "
        "to run it again without risking a second stream, pass body.command_id = 'c1'.",
        "(command_id=c1, attempts=2)",
    ]


def test_a_proxy_that_cannot_be_reached_is_named_word_for_word(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # released: nothing listens there
    monkeypatch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    assert str(outcome(max_retries=2)[0]).split("\n") == [
        "could not reach Telnyx after 1 attempt(s): the proxy could not be reached",
        "Check HTTPS_PROXY (its address and credentials), or unset it. Nothing was sent to Telnyx (no byte of "
        "the request was written), so running it again is safe.",
        "(command_id=c1, attempts=1)",
    ]


def test_a_proxy_refusal_is_shown_up_to_120_characters(monkeypatch):
    result = through_a_proxy_answering(b"HTTP/1.1 403 " + b"w" * 300, monkeypatch, max_retries=0)
    shown = "Tunnel connection failed: 403 " + "w" * 300
    first = str(result).split("\n")[0]
    assert first == f"could not reach Telnyx after 1 attempt(s): the proxy refused to open a tunnel ({shown[:117]}...)"


def test_a_proxy_that_never_accepts_the_connection_could_not_be_reached(monkeypatch, unanswered_port):
    monkeypatch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{unanswered_port}")
    result, took = outcome(max_retries=0, timeout_s=0.5, deadline_s=3)
    assert str(result).startswith("could not reach Telnyx after 1 attempt(s): the proxy could not be reached\n"), result
    assert took < 3 + SLACK
