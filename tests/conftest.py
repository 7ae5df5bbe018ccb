"""Fixtures: real servers on 127.0.0.1 only (the emulator, pytest-httpserver, the receiver).

The script gets a base URL through TELNYX_BASE_URL, as users set it. Three things are wrapped, each to
make a moment happen that no live server can time: socket.getaddrinfo (a slow resolver, in
test_deadline and test_shared: no test may change the machine's resolver), and urllib3's pool taking
a connection back (Internals.watchdog_round_as_the_pool_takes_a_connection_back). Tests use
script.py's public names (its __all__); the few private parts a test truly needs are reached through
``internals`` below.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Reference data copied into the repository (tests/reference/README.md names the source): a clone
# alone runs every test.
REFERENCE = ROOT / "tests" / "reference"

from rawserver import RawServer  # noqa: E402

import script  # noqa: E402
from emulator import Emulator  # noqa: E402
from stream_server import Receiver  # noqa: E402


def pytest_report_header() -> str:
    from importlib.metadata import version  # jsonschema.__version__ is deprecated (a warning in the output)

    import requests
    import urllib3

    return f"script.py runs on requests {requests.__version__}, urllib3 {urllib3.__version__}, jsonschema " + version(
        "jsonschema"
    )


KEY = "KEYtest_0123456789abcdefSECRET"  # a fake key, easy to grep for in every output


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Call Control only (no media): for request, error and fault tests."""
    with Emulator(api_key=KEY, media=False) as emu:
        monkeypatch.setenv("TELNYX_BASE_URL", emu.base_url)
        yield emu


@pytest.fixture
def media_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Emulator]:
    """The full emulator, streaming media as fast as the socket takes it."""
    with Emulator(api_key=KEY, fast=True, record_dir=tmp_path / "played") as emu:
        monkeypatch.setenv("TELNYX_BASE_URL", emu.base_url)
        yield emu


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "received") as rx:
        yield rx


@pytest.fixture
def api(httpserver: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """pytest-httpserver standing in for api.telnyx.com (for exact bytes and odd answers)."""
    monkeypatch.setenv("TELNYX_BASE_URL", httpserver.url_for("/v2"))
    yield httpserver
    httpserver.check()  # what failed inside the server's thread (assertions, handler errors) fails the test


AUTH = {"apiKey": KEY}
URL = "wss://media.example.com/stream"


def start(call_id: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """main() with the test key and a valid default body."""
    return script.main(AUTH, call_id, {"stream_url": URL} if body is None else body, **kwargs)


def everything_said(outcome: Any) -> str:
    """Every text a user, a log or Windmill could see of an outcome (a result or an error)."""
    import pickle
    import traceback

    parts = [str(outcome), repr(outcome), pickle.dumps(outcome).decode("latin-1")]
    if isinstance(outcome, BaseException):
        parts.append("".join(traceback.format_exception(type(outcome), outcome, outcome.__traceback__)))
        parts.extend(f"{v}\n{v!r}" for v in vars(outcome).values())
    else:
        parts.append(json.dumps(outcome))
    return "\n".join(parts)


def sent_bodies(emu: Emulator) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in emu.backend.requests if r.path.startswith("/v2/")]


class Internals:
    """script.py's private parts that a test truly needs, reached here only; each says why no public
    path serves."""

    @staticmethod
    def base_url() -> str:
        """The API address main() would use: the default is api.telnyx.com, which no test may reach."""
        return script._base_url()

    @staticmethod
    def drop_pooled_connections() -> None:
        """Close the process's pool now: a server handler waiting on a kept-alive connection ends at once
        (fresh_adapter puts the previous adapter back after the test)."""
        script._adapter().close()
        script._ADAPTER = None

    @staticmethod
    def without_interim_answer_hook(monkeypatch: pytest.MonkeyPatch) -> None:
        """Plain http.client responses: what a new Python that renamed the hooked internals would give."""
        import http.client

        monkeypatch.setattr(script._HTTPConnection, "response_class", http.client.HTTPResponse)

    @staticmethod
    def mask_in_logs(key: str) -> None:
        """The key as main() registers it for the urllib3 log filter (a log test has no call to make)."""
        script._remember_key(key)

    @staticmethod
    def dead_watchdog_program() -> str:
        """Python lines that leave a fresh process with a watchdog that has died (no test can kill a thread),
        for a test's subprocess: its next call must start a new one."""
        return (
            "ended = threading.Thread(target=lambda: None)\n"
            "ended.start()\n"
            "ended.join()\n"
            "script._WATCHDOG[:] = [ended]\n"
        )

    @staticmethod
    def watchdog_alive() -> bool:
        return any(t.name == "telnyx-streaming-start-watchdog" and t.is_alive() for t in threading.enumerate())

    @staticmethod
    def keys_remembered() -> list:
        """The keys kept for masking log records, oldest first (no output shows them)."""
        return list(script._KEYS_SEEN)

    @staticmethod
    def forget_keys(monkeypatch: pytest.MonkeyPatch) -> None:
        """As in a process that has used no key yet (every test before this one used some)."""
        monkeypatch.setattr(script, "_KEYS_SEEN", {})

    @staticmethod
    def forget_validator(monkeypatch: pytest.MonkeyPatch) -> None:
        """As in a fresh process: the validator is built on first use (cold-start cost)."""
        monkeypatch.setattr(script, "_VALIDATOR", None)

    @staticmethod
    def validator() -> Any:
        return script._VALIDATOR

    @staticmethod
    def classify(exc: BaseException, sent: bool) -> tuple:
        """A failure no server or network here can produce (an exception of a type nothing raises today)."""
        return tuple(script._classify(exc, sent))

    @staticmethod
    def guard(deadline: float) -> Any:
        """One attempt's deadline guard, on its own: the moments a test cannot time with a live attempt
        (a cancel that comes after the connection went back to the pool, or before there is one)."""
        return script._DeadlineGuard(deadline)

    @staticmethod
    def watchdog_round_as_the_pool_takes_a_connection_back(monkeypatch: pytest.MonkeyPatch) -> None:
        """The watchdog's worst moment, made to happen every time: as urllib3's pool takes a connection
        back (its _put_conn), every attempt under way is cancelled, as a round of the watchdog would
        whose deadline just passed. No live test can time that window."""
        import urllib3.connectionpool

        put_conn = urllib3.connectionpool.HTTPConnectionPool._put_conn

        def cancel_first(pool: Any, conn: Any) -> None:
            for attempt in list(script._WATCHED):
                attempt.cancel()
            put_conn(pool, conn)

        monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "_put_conn", cancel_first)

    @staticmethod
    def attempts_watched() -> int:
        """How many attempts the watchdog is watching (each attempt leaves the list when it ends)."""
        return len(script._WATCHED)

    @staticmethod
    def masked(value: Any, api_key: str) -> Any:
        """Masking a value no answer can hold (not JSON at all)."""
        return script._masked(value, api_key)


internals = Internals()


@pytest.fixture
def fresh_adapter(monkeypatch):
    """The process's adapter built anew for the test (so tests check how it is built), and closed
    after it with its pooled sockets; the adapter from before the test comes back."""
    monkeypatch.setattr(script, "_ADAPTER", None)  # a private part, as in Internals: only how the pool is built
    yield
    if script._ADAPTER is not None:
        script._ADAPTER.close()


@pytest.fixture
def serve(monkeypatch):
    """serve(handler, tls=None) -> a RawServer the script is pointed at (TELNYX_BASE_URL)."""
    servers: list[RawServer] = []

    def start(handler: Any, tls: Any = None) -> RawServer:
        server = RawServer(handler, tls).__enter__()
        servers.append(server)
        monkeypatch.setenv("TELNYX_BASE_URL", server.base_url)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)  # re-raises what a handler raised (other than the client hanging up)


CERT = ROOT / "tests" / "tls" / "127.0.0.1.pem"  # self-signed for IP 127.0.0.1 (its own CA), valid to 2126
TRANSPORT_SETTINGS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def tls_context() -> Any:
    """A server-side TLS context with CERT (trusted by a client only when a CA bundle setting names it)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, ROOT / "tests" / "tls" / "127.0.0.1.key")
    return context


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A folder whose path is short enough to be shown whole in a message (messages cut values at 80
    characters; pytest's tmp_path under xdist is longer)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp" if Path("/tmp").is_dir() else None))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listen queue is full: a connect to it waits, as to a host that drops packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(8):  # more than the backlog, on every kernel
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        queued.append(client)
    time.sleep(0.1)
    yield port
    for client in queued:
        client.close()
    listener.close()
