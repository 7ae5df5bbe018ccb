"""Proxies on 127.0.0.1 for the transport tests: an https proxy (TLS to the proxy, then CONNECT: TLS inside
TLS) and a SOCKS5 proxy (RFC 1928: no authentication, CONNECT to an IPv4 address or, for socks5h, a name
it resolves itself). Each can misbehave as a hostile one would: the SOCKS proxy can drip its handshake
answers or never answer."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from typing import Any

from conftest import tls_context
from rawserver import read_request


class _Proxy:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.tunnels = 0  # tunnels opened to a destination
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self.clients.append(conn)
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raise NotImplementedError

    def _tunnel(self, client: Any, host: str, port: int) -> socket.socket:
        upstream = socket.create_connection((host, port), timeout=10)
        self.tunnels += 1
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        return upstream

    def close(self) -> None:
        self.listener.close()
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pipe(source: Any, sink: Any) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        source.settimeout(None)
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class TlsProxy(_Proxy):
    """An https proxy: TLS to the proxy, then CONNECT, then bytes piped both ways."""

    def _serve(self, raw: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            conn = tls_context().wrap_socket(raw, server_side=True)
            head = read_request(conn)
            host, port = head.split(b" ")[1].decode().rsplit(":", 1)
            upstream = self._tunnel(conn, host, int(port))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(conn, upstream)


class SocksProxy(_Proxy):
    """A SOCKS5 proxy. ``names`` maps the names it resolves (socks5h) to addresses; ``drip`` sends each
    byte of its answers that many seconds apart; ``mute`` never answers the greeting."""

    def __init__(self, names: dict[str, str] | None = None, drip: float = 0.0, mute: bool = False) -> None:
        self.names, self.drip, self.mute = names or {}, drip, mute
        self.asked: list[tuple[str, int]] = []  # the destinations clients asked for, as sent
        super().__init__()

    def _send(self, conn: socket.socket, data: bytes) -> None:
        if not self.drip:
            conn.sendall(data)
            return
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(self.drip)

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, struct.error):
            conn.settimeout(10)
            _, methods = _recv(conn, 2)
            _recv(conn, methods)
            if self.mute:
                conn.recv(1)  # until the client hangs up
                return
            self._send(conn, b"\x05\x00")  # no authentication
            _, _, _, kind = _recv(conn, 4)  # version, command (CONNECT), reserved, address type
            if kind == 1:
                host = socket.inet_ntoa(_recv(conn, 4))
            elif kind == 3:
                host = _recv(conn, _recv(conn, 1)[0]).decode()
            else:
                host = socket.inet_ntop(socket.AF_INET6, _recv(conn, 16))
            (port,) = struct.unpack("!H", _recv(conn, 2))
            self.asked.append((host, port))
            try:
                upstream = self._tunnel(conn, self.names.get(host, host), port)
            except OSError:
                self._send(conn, b"\x05\x04\x00\x01" + bytes(6))  # host unreachable
                return
            self._send(conn, b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))
            _pipe(conn, upstream)


def _recv(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("the client hung up")
        data += chunk
    return data


class ConnectProxy(_Proxy):
    """A plain http proxy that tunnels (CONNECT), as HTTPS_PROXY=http://... uses it."""

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            head = read_request(conn)
            host, port = head.split(b" ")[1].decode().rsplit(":", 1)
            try:
                upstream = self._tunnel(conn, host, int(port))
            except OSError:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(conn, upstream)
