"""The transport on public ground: what script.py relies on beyond the documented surface of requests,
urllib3 and http.client is one short list (the comment atop its HTTP section), and each item is checked
here so that a release changing it fails loudly, naming the item. Then the guarantees that rest on it,
through every route requests supports (direct, an http proxy, an https proxy: TLS inside TLS, SOCKS5
with names resolved here or by the proxy): the deadline holds, the attempt it cuts ends soon after,
nothing of the script runs between calls, "nothing was sent" is said on evidence only, and no name
lookup keeps a process from exiting or from answering Ctrl-C and SIGTERM at once."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import urllib3
from conftest import (
    CERT,
    KEY,
    ROOT,
    TRANSPORT_SETTINGS,
    URL,
    internals,
    timed,
    tls_context,
    tls_context_for,
    wait_until,
)
from proxies import ConnectProxy, SocksProxy, TlsProxy
from rawserver import RawServer, answer, read_request, silent

import script

pytestmark = pytest.mark.usefixtures("fresh_adapter")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in (*TRANSPORT_SETTINGS, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def attempt_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("telnyx-")]


# -- the undocumented names, each checked where a release would change it ----------------------------
def test_the_undocumented_names_script_py_relies_on_are_still_there():
    """The list atop script.py's HTTP section, item by item; a failure names the item to look at again. (3),
    urllib3's SSLTransport.socket, is proven by the https proxy's route below: its cut reaches the socket."""
    manager = urllib3.PoolManager()
    assert isinstance(getattr(manager, "pool_classes_by_scheme", None), dict), "(1) PoolManager.pool_classes_by_scheme"
    for pool_class in manager.pool_classes_by_scheme.values():
        assert isinstance(getattr(pool_class, "ConnectionCls", None), type), "(1) a pool class's ConnectionCls"
    assert http.client.HTTPConnection("127.0.0.1").sock is None, "(2) http.client.HTTPConnection.sock"
    assert getattr(http.client.HTTPConnection, "response_class", None) is http.client.HTTPResponse, "(4)"
    assert callable(getattr(http.client.HTTPResponse, "begin", None)), "(4) HTTPResponse.begin"
    assert hasattr(http.client.HTTPConnection, "debuglevel"), "(4) HTTPConnection.debuglevel"
    import requests.utils
    from urllib3.util.response import assert_header_parsing

    assert callable(requests.utils.get_environ_proxies) and callable(assert_header_parsing), "(5)"
    assert requests.utils.default_user_agent().startswith("python-requests/"), "(5)"
    conn = urllib3.connection.HTTPConnection("telnyx.test")
    error = urllib3.exceptions.NameResolutionError("telnyx.test", conn, socket.gaierror(-2, "unknown"))
    assert error.conn.host == "telnyx.test", "(6) NameResolutionError.conn.host"


ROUTES = ["direct http", "direct https", "http proxy", "https proxy", "socks5", "socks5h"]


@contextlib.contextmanager
def route(name: str, handler: Any, monkeypatch: pytest.MonkeyPatch, folder: Path) -> Iterator[tuple]:
    """A server answering with ``handler``, reached through the route ``name``: (server, proxy or None)."""
    host_name = "telnyx.test"  # socks5h: only the proxy knows this name
    tls: Any = None if name == "direct http" else tls_context()
    bundle = CERT
    if name == "socks5h":
        tls, bundle = tls_context_for(host_name, folder)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(RawServer(handler, tls))
        proxy: Any = {
            "http proxy": ConnectProxy,
            "https proxy": TlsProxy,
            "socks5": SocksProxy,
            "socks5h": lambda: SocksProxy({host_name: "127.0.0.1"}),
        }.get(name, lambda: None)()
        if proxy is not None:
            stack.enter_context(proxy)
            scheme = {"http proxy": "http", "https proxy": "https"}.get(name, name)
            monkeypatch.setenv("HTTPS_PROXY", f"{scheme}://127.0.0.1:{proxy.port}")
        host = host_name if name == "socks5h" else "127.0.0.1"
        monkeypatch.setenv("TELNYX_BASE_URL", f"{'https' if tls else 'http'}://{host}:{server.port}/v2")
        if tls is not None:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))  # the https proxy's certificate is CERT too
        yield server, proxy


start = timed  # main() with this command_id: (its outcome, seconds)


def drip_after_ok(conn: socket.socket, request: bytes) -> None:
    """Keep-alive: "ok-..." answered at once; "drip-..." one byte every 20 ms until the client hangs up."""
    while request:
        command_id = json.loads(request.split(b"\r\n\r\n", 1)[1])["command_id"]
        body = json.dumps({"data": {"answers": command_id}}).encode()
        whole = answer(200, [], body).replace(b"Connection: close\r\n", b"")
        if command_id.startswith("drip"):
            for byte in whole:
                conn.sendall(bytes([byte]))
                time.sleep(0.02)
        conn.sendall(whole)
        request = read_request(conn)


@pytest.mark.parametrize("name", ROUTES)
def test_every_route_is_answered_and_a_dripping_answer_is_cut_at_the_deadline(name, monkeypatch, tmp_path):
    """(1), (2) and, through the https proxy, (3): our connection class is in every route's pool, so the
    deadline cuts the socket and the attempt's thread ends at once; the call itself returns by its deadline
    whatever the route."""
    with route(name, drip_after_ok, monkeypatch, tmp_path) as (server, proxy):
        assert start("ok-1", max_retries=0)[0] == {"data": {"answers": "ok-1"}}
        if proxy is not None:
            assert proxy.tunnels == 1
        if name == "socks5h":
            assert proxy.asked == [("telnyx.test", server.port)]  # the name went to the proxy, unresolved
        result, took = start("drip-1", deadline_s=0.5, max_retries=0)
        assert isinstance(result, script.TelnyxConnectionError) and took < 1.0, (took, result)
        assert "pass body.command_id = 'drip-1'" in str(result)  # written: it may have reached the server
        # the cut reached the socket: the thread ends now, not when the dripping answer would have ended
        assert wait_until(lambda: not attempt_threads(), 0.5), f"(2)/(3) the cut missed: {attempt_threads()}"
        assert start("ok-2", max_retries=0)[0] == {"data": {"answers": "ok-2"}}  # the route still works


@pytest.mark.parametrize("name", ROUTES)
def test_nothing_was_sent_is_said_when_connecting_failed_on_every_route(name, monkeypatch, tmp_path):
    """(1): only our connection class knows that connecting (lookup, proxy, TLS) failed before a byte of
    the request could leave: without it, the error would say the command may have reached Telnyx."""
    refused = tls_context() if name != "direct http" else None

    def refuse(conn: socket.socket, request: bytes) -> None:  # never reached: the handshake fails first
        raise AssertionError("the request reached the server")

    with route(name, refuse, monkeypatch, tmp_path) as (server, _):
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)  # the server's certificate is now untrusted
        if refused is None:  # plain http: nothing listens at the address any more
            server.__exit__(None, None, None)
        result, _ = start("c-refused", max_retries=1)
    assert isinstance(result, script.TelnyxConnectionError), result
    assert "Nothing was sent to Telnyx (no byte of the request was written)" in str(result), result
    assert server.requests in ([], [b""])


def test_a_socks_proxy_dripping_its_handshake_is_bounded_by_the_deadline(monkeypatch):
    """A SOCKS handshake happens inside urllib3 before any socket is ours to cut: the call still returns by
    its deadline, and the attempt's thread ends once the proxy has answered (each read bounded by the
    connect timeout), closing the connection opened too late."""
    with RawServer(drip_after_ok, tls_context()) as server, SocksProxy(drip=0.15) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"socks5://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("TELNYX_BASE_URL", f"https://127.0.0.1:{server.port}/v2")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERT))
        result, took = start("ok-late", deadline_s=0.5, max_retries=0)
        assert isinstance(result, script.TelnyxConnectionError) and took < 1.0, (took, result)
        assert "Nothing was sent to Telnyx" in str(result)
        assert wait_until(lambda: not attempt_threads(), 12 * 0.15 + 1.0), attempt_threads()  # 12 bytes dripped
        assert server.requests in ([], [b""])  # connected too late: never used


def test_a_socks_proxy_that_never_answers_is_bounded_by_the_deadline(monkeypatch):
    with SocksProxy(mute=True) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"socks5h://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")
        result, took = start("c-mute", deadline_s=0.6, timeout_s=10, max_retries=2)
    assert isinstance(result, script.TelnyxConnectionError) and took < 1.1, (took, result)
    assert "Nothing was sent to Telnyx" in str(result)
    assert wait_until(lambda: not attempt_threads(), 1.5), attempt_threads()  # its read timeout: 0.6 s at most


def test_a_socks_proxy_that_cannot_reach_the_host_is_named(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # released: nothing listens there
    with SocksProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"socks5://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("TELNYX_BASE_URL", f"https://127.0.0.1:{port}/v2")
        result, _ = start("c-unreachable", max_retries=2)
    assert str(result).split("\n")[:2] == [
        "could not reach Telnyx after 1 attempt(s): the SOCKS proxy failed (0x04: Host unreachable)",
        "Check HTTPS_PROXY (its address and credentials), or unset it. Nothing was sent to Telnyx (no byte of "
        "the request was written), so running it again is safe.",
    ]


def test_an_https_base_url_on_a_plain_http_server_says_so(emulator, monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", emulator.base_url.replace("http://", "https://"))  # the emulator: plain HTTP
    result, _ = start("c-plain", max_retries=2)
    assert str(result).split("\n")[:2] == [
        "could not reach Telnyx after 1 attempt(s): the server did not answer in TLS (it speaks plain HTTP, or "
        "another protocol)",
        "TELNYX_BASE_URL starts with https:// but the server there answers without TLS: use http:// for a server "
        "on this machine (the emulator), or check the port. Nothing was sent to Telnyx (no byte of the request "
        "was written), so running it again is safe.",
    ]


# -- name lookups that never return: the deadline, later calls, exit, Ctrl-C and SIGTERM -------------
STUCK_RESOLVER = f"""
import socket, sys, threading, time
sys.path.insert(0, {str(ROOT)!r})
real, never, STUCK = socket.getaddrinfo, threading.Event(), [0]
def getaddrinfo(host, *args, **kwargs):  # a resolver that never answers for this name
    if host == "stuck.test":
        STUCK[0] += 1
        print("lookup", file=sys.stderr, flush=True)
        never.wait()
    return real(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
"""


def test_lookups_that_never_return_delay_no_later_call_nor_the_exit(monkeypatch):
    with RawServer(drip_after_ok) as healthy:
        program = (
            STUCK_RESOLVER
            + f"""
import json, os, script
auth = {{"apiKey": {KEY!r}}}
n = 0
while STUCK[0] < 64:  # 64 lookups left stuck, each call ending by its deadline (the first may end before one)
    os.environ["TELNYX_BASE_URL"] = "https://stuck.test/v2"
    began, n = time.monotonic(), n + 1
    try:
        script.main(auth, "v3:x", {{"stream_url": {URL!r}, "command_id": f"c{{n}}"}}, deadline_s=0.1, max_retries=0)
    except script.TelnyxConnectionError as error:
        assert time.monotonic() - began < 0.6 and "Nothing was sent" in str(error), str(error)
try:  # the 65th is not even tried: no thread piles up behind a resolver that does not answer
    script.main(auth, "v3:x", {{"stream_url": {URL!r}, "command_id": "c64"}}, deadline_s=5, max_retries=0)
except script.TelnyxConnectionError as error:
    said = str(error).split("\\n")[:2]
assert said == [
    "could not reach Telnyx after 1 attempt(s): 64 name lookups of earlier attempts have not returned: DNS is not "
    "answering",
    "Check the host name in TELNYX_BASE_URL and this worker's DNS. Nothing was sent to Telnyx (no byte of the request "
    "was written), so running it again is safe.",
], said
os.environ["TELNYX_BASE_URL"] = {healthy.base_url!r}
began = time.monotonic()
said = script.main(auth, "v3:x", {{"stream_url": {URL!r}, "command_id": "ok-after"}}, max_retries=0)
print(json.dumps({{"said": said, "took": time.monotonic() - began, "exit_from": time.monotonic()}}), flush=True)
"""
        )
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
        exited = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("lookup\n") == 64  # every one of the 64 reached its lookup, which never returned
    report = json.loads(done.stdout)
    assert report["said"] == {"data": {"answers": "ok-after"}}
    assert report["took"] < 0.5, report  # not queued behind the stuck lookups
    assert exited - report["exit_from"] < 1.0, f"exit took {exited - report['exit_from']:.2f} s"


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_end_the_command_line_at_once_during_a_lookup(how):
    # Ctrl-C as a terminal delivers it, even when this suite runs as a background job (which ignores SIGINT)
    terminal = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    command_line = "\nfrom script_cli import cli\nsys.exit(cli(['v3:x', '--body', sys.argv[1]]))\n"
    program = terminal + STUCK_RESOLVER + command_line
    env = {**os.environ, "TELNYX_BASE_URL": "https://stuck.test/v2", "TELNYX_API_KEY": KEY}
    body = json.dumps({"stream_url": URL})
    with subprocess.Popen(
        [sys.executable, "-c", program, body], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as process:
        assert process.stderr is not None
        assert process.stderr.readline() == "lookup\n"  # the call waits on the lookup now
        began = time.monotonic()
        process.send_signal(how)
        process.wait(10)
        took = time.monotonic() - began
    assert took < 1.0, f"{how.name}: {took:.2f} s"
    assert process.returncode != 0


def test_a_caller_interrupted_during_a_lookup_never_sends_the_request_afterwards():
    """The caller's own timer interrupts main() while the name lookup runs in its thread; the lookup answers
    later. The connection it opens then is cut as it is set: the request never leaves after main() raised."""
    with RawServer(drip_after_ok) as server:
        program = f"""
import signal, socket, sys, time
sys.path.insert(0, {str(ROOT)!r})
real = socket.getaddrinfo
def getaddrinfo(host, port, *args, **kwargs):  # answers after 1 s
    if host == "localhost":
        time.sleep(1.0)
        return real("127.0.0.1", port, *args, **kwargs)
    return real(host, port, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
import os, script
os.environ["TELNYX_BASE_URL"] = "http://localhost:{server.port}/v2"  # a name: looked up in its own thread
class Interrupted(Exception):
    pass
def interrupt(*_):
    raise Interrupted("the caller's own timer")
signal.signal(signal.SIGALRM, interrupt)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    script.main({{"apiKey": {KEY!r}}}, "v3:x", {{"stream_url": {URL!r}, "command_id": "ok-late"}}, deadline_s=5)
except Interrupted:
    print("interrupted", flush=True)
time.sleep(2.0)  # the lookup answers meanwhile, and its connection is cut as it is set
"""
        env = {**os.environ, "TELNYX_BASE_URL": ""}
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout == "interrupted\n", done.stdout + done.stderr
    assert server.requests in ([], [b""]), server.requests  # nothing of the request ever arrived


def test_calls_in_a_row_share_one_clock_thread_which_ends_soon_after_the_last():
    with RawServer(drip_after_ok) as server:
        os.environ["TELNYX_BASE_URL"] = server.base_url
        try:
            clocks: list[threading.Thread] = []  # the objects: a new thread may get an ended one's ident
            for n in range(5):
                assert start(f"ok-{n}", max_retries=0)[0] == {"data": {"answers": f"ok-{n}"}}
                clocks += attempt_threads()
            # one clock, alive between calls in a row (a second one if a loaded machine stalls past its linger)
            assert len(clocks) == 5 and len(set(clocks)) <= 2, clocks
            assert wait_until(lambda: not attempt_threads(), 1.0), attempt_threads()  # and gone within a second
        finally:
            del os.environ["TELNYX_BASE_URL"]


def test_the_exit_never_waits_for_a_call_under_way_in_a_daemon_thread():
    """The interpreter joins only non-daemon threads at exit: the clock is a daemon whoever started it, so a
    call still waiting in a daemon thread of the user's (a silent server, a 30 s deadline) does not hold the
    process, even when it shares the clock a call of the main thread started just before."""
    with RawServer(drip_after_ok) as healthy, RawServer(silent(60)) as server:
        program = f"""
import os, sys, threading
sys.path.insert(0, {str(ROOT)!r})
import script
auth, body = {{"apiKey": {KEY!r}}}, {{"stream_url": {URL!r}, "command_id": "ok-main"}}
os.environ["TELNYX_BASE_URL"] = {healthy.base_url!r}
script.main(auth, "v3:x", body, max_retries=0)  # the main thread's call: the clock lingers after it
os.environ["TELNYX_BASE_URL"] = {server.base_url!r}
call = lambda: script.main(auth, "v3:x", body, deadline_s=30, max_retries=0)
threading.Thread(target=call, daemon=True).start()
sys.stdin.readline()  # the main thread ends when told: the call is still waiting for its answer
"""
        with subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE, text=True) as process:
            assert wait_until(lambda: server.requests, 30.0), "the call never reached the server"
            assert process.stdin is not None
            process.stdin.write("exit\n")
            process.stdin.flush()
            began = time.monotonic()
            process.wait(20)
            took = time.monotonic() - began
    assert took < 1.0, f"the exit waited {took:.2f} s"


def test_a_lookup_that_answers_late_has_a_named_thread_that_ends_when_it_answers(monkeypatch, unanswered_port):
    """While the call waits for a name lookup, the script's two threads are named as an operator finds them in a
    thread dump; the lookup's thread outlives the call only until the resolver answers, the clock not at all."""
    real, answered, seen = socket.getaddrinfo, threading.Event(), []

    def getaddrinfo(host, port, *args, **kwargs):  # a resolver that answers 'late.test' after the deadline
        if host == "late.test":
            seen.append(sorted(t.name for t in attempt_threads()))
            answered.wait(10)
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("TELNYX_BASE_URL", f"https://late.test:{unanswered_port}/v2")
    result, took = start("c-late", deadline_s=0.3, max_retries=0)
    assert isinstance(result, script.TelnyxConnectionError) and took < 0.8, (took, result)
    assert seen == [["telnyx-lookup", "telnyx-streaming-start-clock"]]
    assert [t.name for t in attempt_threads() if t.name == "telnyx-lookup"] == ["telnyx-lookup"]  # still looking up
    answered.set()
    assert wait_until(lambda: not attempt_threads(), 1.0), attempt_threads()


def test_cutting_a_socket_that_is_closed_already_is_harmless():
    ours, peer = socket.socketpair()
    ours.close()
    peer.close()
    attempt = internals.attempt(time.monotonic() + 10)
    attempt.reached(requested=True, sock=ours)
    assert attempt.cut_now() is True and attempt.cut is True  # no error: the socket was closed already


@pytest.mark.parametrize(
    ("proxy", "words"),
    [
        ("127.0.0.1:{port}", "the proxy could not be reached"),  # no scheme: http://, as requests takes it
        ("socks4://127.0.0.1:{port}", "the SOCKS proxy failed"),
        ("socks4a://127.0.0.1:{port}", "the SOCKS proxy failed"),
        ("http://[::1:{port}", "HTTPS_PROXY is not a proxy URL"),  # does not parse
        ("http://:{port}", "HTTPS_PROXY is not a proxy URL"),  # no host
    ],
)
def test_proxy_urls_are_taken_as_requests_takes_them(proxy, words, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # released: nothing listens there
    monkeypatch.setenv("HTTPS_PROXY", proxy.format(port=port))
    monkeypatch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")
    result, _ = start("c-proxy", max_retries=0)
    assert str(result).startswith(f"could not reach Telnyx after 1 attempt(s): {words}"), result
    assert "Nothing was sent to Telnyx" in str(result)


def test_a_failure_whose_shape_changed_is_still_one_of_the_three_errors():
    """A urllib3 release whose NameResolutionError no longer carries the connection: classified as unforeseen."""
    conn = urllib3.connection.HTTPConnection("telnyx.test")
    error = urllib3.exceptions.NameResolutionError("telnyx.test", conn, socket.gaierror(-2, "unknown"))
    del error.conn
    assert internals.classify(error, False) == ("other", "NameResolutionError", False)
