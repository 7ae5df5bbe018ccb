"""A raw TCP server on 127.0.0.1 for answers no HTTP library would send: dripped bytes, broken
headers, huge bodies, echoes of the request. Each connection is served by ``handler(conn, request)``
in its own thread; the server records every request's bytes and counts connections."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Callable

Handler = Callable[[socket.socket, bytes], None]


def read_request(conn: socket.socket, limit: float = 5.0) -> bytes:
    """One HTTP request (headers and a Content-Length body), or what arrived before the peer stopped."""
    conn.settimeout(limit)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
            data += chunk
    except OSError:
        pass
    return data


def answer(status: int | bytes, headers: list[tuple[str | bytes, str | bytes]], body: bytes = b"") -> bytes:
    """An HTTP/1.1 answer with Connection: close and a Content-Length unless the headers give one."""
    line = status if isinstance(status, bytes) else f"HTTP/1.1 {status} X".encode()
    names = {(n if isinstance(n, str) else n.decode("latin-1")).lower() for n, _ in headers}
    all_headers = [*headers, ("Connection", "close")]
    if "content-length" not in names and "transfer-encoding" not in names:
        all_headers.append(("Content-Length", str(len(body))))
    raw = b"".join(
        (n if isinstance(n, bytes) else n.encode("latin-1"))
        + b": "
        + (v if isinstance(v, bytes) else v.encode("latin-1"))
        + b"\r\n"
        for n, v in all_headers
    )
    return line + b"\r\n" + raw + b"\r\n" + body


def replying(data: bytes) -> Handler:
    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(data)

    return handler


def hung_up(conn: socket.socket, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as the client closes the connection."""
    conn.settimeout(seconds)
    try:
        return conn.recv(1) == b""
    except TimeoutError:
        return False


def silent(seconds: float) -> Handler:
    """Answer nothing, until the client hangs up or `seconds` pass (a server that never answers; its
    thread ends with the client, so nothing of it outlives the test)."""

    def handler(conn: socket.socket, request: bytes) -> None:
        hung_up(conn, seconds)

    return handler


def keep_alive(data: bytes, barrier: threading.Barrier | None = None) -> Handler:
    """Answer every request on the connection with `data` (which must not say Connection: close),
    each after `barrier` has let it through (so a burst of calls is all in flight at once)."""

    def handler(conn: socket.socket, request: bytes) -> None:
        while request:
            if barrier is not None:
                barrier.wait(10)
            conn.sendall(data)
            request = read_request(conn)

    return handler


class RawServer:
    """``tls``: serve https with this context (the handshake's failure ends the connection)."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.requests: list[bytes] = []
        self.connections = 0
        self.sent = 0  # bytes handlers report they sent (for the huge-answer tests)
        self.errors: list[BaseException] = []  # what handlers raised, re-raised by __exit__
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []  # every accepted connection, cut at exit
        self._closed = threading.Event()
        self.port = self._listener.getsockname()[1]
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/v2"

    def __enter__(self) -> RawServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not on Linux
        except OSError:
            pass
        self._listener.close()
        for conn in list(self._conns):  # a handler waiting on a connection the client keeps pooled ends now
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)
        if self.errors and exc[0] is None:
            raise AssertionError(f"a handler of the raw server failed: {self.errors[0]!r}") from self.errors[0]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
                self._conns.append(conn)  # the plain socket was detached by the wrap
            except OSError:  # the client refused the certificate, or gave up
                conn.close()
                return
        with conn:
            request = read_request(conn)
            self.requests.append(request)
            try:
                self.handler(conn, request)
            except OSError:  # the client gave up (the point of most of these tests)
                pass
            except BaseException as error:  # a broken handler is the test's failure, not a silent thread
                self.errors.append(error)
