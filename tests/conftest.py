"""Fixtures: real servers on 127.0.0.1 only (the emulator, pytest-httpserver, the receiver).

The script gets a base URL through TELNYX_BASE_URL, as users set it. Two things are wrapped, each to
make a moment happen that no live server can time: socket.getaddrinfo (a slow or stuck resolver, in
test_deadline, test_shared and test_public_ground: no test may change the machine's resolver), and
urllib3's pool taking a connection back (test_shared: the deadline passing at that very moment). Tests use
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


def timed(command_id: str, **kwargs: Any) -> tuple[Any, float]:
    """main() with the test key and this command_id: (its result or its error, the seconds it took)."""
    began = time.monotonic()
    try:
        result: Any = script.main(AUTH, "v3:timed", {"stream_url": URL, "command_id": command_id}, **kwargs)
    except script.TelnyxError as error:
        result = error
    return result, time.monotonic() - began


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
        """Close this thread's pool now: a server handler waiting on a kept-alive connection ends at once
        (the next call makes a new one)."""
        script._adapter().close()
        script._POOLS.adapter = None

    @staticmethod
    def pool_for(url: str) -> Any:
        """This thread's urllib3 pool for ``url``'s host (a test that must tell this thread's pool from
        another's); the thread has called it already."""
        from urllib.parse import urlsplit

        parts, pools = urlsplit(url), script._adapter().poolmanager.pools
        return next(pools[key] for key in pools.keys() if (key.key_host, key.key_port) == (parts.hostname, parts.port))

    @staticmethod
    def fresh_pools(monkeypatch: pytest.MonkeyPatch) -> None:
        """Every thread's pool made anew for the test (so tests check how it is built, and no pooled
        connection of an earlier test is used)."""
        monkeypatch.setattr(script, "_POOLS", threading.local())

    @staticmethod
    def mask_in_logs(key: str) -> None:
        """The key as main() registers it for the urllib3 log filter (a log test has no call to make)."""
        script._remember_key(key)

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
        script._validator.cache_clear()

    @staticmethod
    def validator() -> Any:
        return script._validator() if script._validator.cache_info().currsize else None

    @staticmethod
    def classify(exc: BaseException, sent: bool) -> tuple:
        """A failure no server or network here can produce (an exception of a type nothing raises today)."""
        return tuple(script._classify(exc, sent))

    @staticmethod
    def attempt(deadline: float) -> Any:
        """One attempt's record on its own: the moments a test cannot time with a live attempt (the deadline
        passing just as the attempt finishes, or before it holds a connection)."""
        return script._Attempt(deadline, socks=False)

    @staticmethod
    def masked(value: Any, api_key: str) -> Any:
        """Masking a value no answer can hold (not JSON at all)."""
        return script._masked(value, api_key)


internals = Internals()


@pytest.fixture
def fresh_adapter(monkeypatch):
    """Pools built anew for the test (internals.fresh_pools), and this thread's closed after it with its
    pooled sockets; the pools from before the test come back."""
    internals.fresh_pools(monkeypatch)
    yield
    internals.drop_pooled_connections()


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


def tls_context_for(name: str, folder: Path) -> tuple[Any, Path]:
    """A server-side TLS context for the host ``name`` (a self-signed certificate made now, with the
    cryptography package), and the certificate's file, for a client's CA bundle setting."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def wait_until(condition: Any, seconds: float) -> bool:
    """Whether ``condition()`` became true within ``seconds`` (polled: a thread's end has no event to
    wait on)."""
    ends = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > ends:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A folder whose path is short enough to be shown whole in a message (messages cut values at 80
    characters; pytest's tmp_path under xdist is longer)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp" if Path("/tmp").is_dir() else None))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def closed_port() -> int:
    """A loopback port the OS picked and nothing listens on (bound, then released): a connect is refused,
    whatever the user runs on fixed ports such as 9."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


@pytest.fixture(autouse=True)
def lookups_end_with_their_test() -> Iterator[None]:
    """A name lookup the deadline abandoned goes on in its thread until the resolver answers (the one thing
    no call can interrupt). The tests whose resolver answers late leave such threads for a moment; wait for
    them here, so the next test sees only threads of its own, and fail the test whose lookup never ends."""
    yield
    lookups = lambda: [t for t in threading.enumerate() if t.name == "telnyx-lookup"]  # noqa: E731
    assert wait_until(lambda: not lookups(), 10.0), f"a lookup's thread outlived its test by 10 s: {lookups()}"
