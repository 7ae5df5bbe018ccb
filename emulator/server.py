"""Telnyx's side, HTTP: the Call Control routes and faults (the emulator's own ``/_emulator`` routes and
page are in admin.py)."""

from __future__ import annotations

import json
import re
import socket
import struct
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar
from urllib.parse import unquote

from .admin import AdminRoutes
from .exceptions import APIError, InvalidBody, NotFound, Unauthorized
from .models import Backend, Recorded

MAX_BODY = 1 << 20


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, Handler)
        self.backend = backend
        self.connections_accepted = 0  # TCP connections: shows whether a client pools them
        self.keep_alive = True  # False: every answer closes its connection (Connection: close)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections_accepted += 1
        super().process_request(request, client_address)


class Handler(AdminRoutes, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as api.telnyx.com
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall
    server: Server

    # Routes: (method, pattern over the raw path) -> handler. Segments are percent-decoded after
    # matching, so an encoded "/" inside an id stays inside the id.
    ROUTES: ClassVar[list[tuple[str, re.Pattern, str]]] = [
        ("POST", re.compile(r"^/v2/calls/([^/]+)/actions/answer$"), "answer"),
        ("POST", re.compile(r"^/v2/calls/([^/]+)/actions/streaming_start$"), "streaming_start"),
        ("POST", re.compile(r"^/v2/calls/([^/]+)/actions/streaming_stop$"), "streaming_stop"),
        ("POST", re.compile(r"^/v2/calls/([^/]+)/actions/hangup$"), "hangup"),
        *AdminRoutes.ADMIN_ROUTES,  # the emulator's own, under /_emulator (admin.py)
    ]

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo own stdout
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- plumbing --------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, MAX_BODY)) if length else b""
        self._raw = raw
        backend = self.server.backend
        path = self.path.split("?", 1)[0]
        backend.record(Recorded(method, self.path, dict(self.headers.items()), raw, self.client_address[:2]))
        for verb, pattern, name in self.ROUTES:
            match = pattern.match(path)
            if verb == method and match:
                args = [unquote(g) for g in match.groups()]
                return self._answer(getattr(self, name), args, raw, public=not name.startswith("admin"))
        return self._error(NotFound(f"No route for {method} {path}."))

    def _answer(self, handler: Callable[..., Any], args: list[str], raw: bytes, public: bool) -> None:
        backend = self.server.backend
        fault = backend.next_fault(args[0] if args else None) if public else None
        if fault and not fault.process and self._apply(fault):
            return None
        try:
            if public and self.headers.get("Authorization") != f"Bearer {backend.api_key}":
                raise Unauthorized("The API key is missing, wrong or revoked.")
            body = _json(raw)
            result = handler(*args, body)
        except APIError as error:
            result = error
        if fault and fault.process and self._apply(fault):  # applied, then the answer is lost or late
            return None
        if isinstance(result, APIError):
            return self._error(result)
        if isinstance(result, bytes):
            ctype = "text/html; charset=utf-8" if result.startswith(b"<!doctype html>") else "audio/wav"
            ctype = "image/png" if result.startswith(b"\x89PNG") else ctype
            return self._send(200, result, ctype)
        return self._send(200, json.dumps(result).encode())

    def _apply(self, fault: Any) -> bool:
        """Act out a fault; True when it took the place of the answer."""
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        if fault.kind == "redirect":
            self._send(302, b"", headers={"Location": fault.location})
            return True
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = {"errors": [{"code": str(fault.status), "title": "Injected fault", "detail": "emulator fault"}]}
        if fault.status == 429:
            body["errors"][0].update(code="10011", title="Too many requests")
        self._send(fault.status, json.dumps(body).encode(), headers=headers)
        return True

    def _error(self, error: APIError) -> None:
        self._send(error.status, json.dumps(error.body()).encode())

    def _send(self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        backend = self.server.backend
        if backend.narrate is not None and not self.path.startswith("/_emulator/"):
            command_id = _command_id(getattr(self, "_raw", b""))
            detail = f" command_id={command_id}" if command_id else ""
            if status >= 400:
                detail += f" {_error_code(body)}"
            backend.say(f"{self.command} {self.path.split('?', 1)[0]} -> {status}{detail}")
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-request-id", str(uuid.uuid4()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if not self.server.keep_alive:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up (timeout): nothing to answer

    # -- Telnyx's routes -------------------------------------------------------------------
    def answer(self, call_id: str, body: Any) -> dict:
        self.server.backend.answer(call_id, {} if body is None else body)
        return {"data": {"result": "ok"}}

    def streaming_start(self, call_id: str, body: Any) -> dict:
        self.server.backend.streaming_start(call_id, {} if body is None else body)
        return {"data": {"result": "ok"}}

    def streaming_stop(self, call_id: str, body: Any) -> dict:
        self.server.backend.streaming_stop(call_id, body or {})
        return {"data": {"result": "ok"}}

    def hangup(self, call_id: str, body: Any) -> dict:
        self.server.backend.hangup(call_id, by="application", why="your application's hangup command")
        return {"data": {"result": "ok"}}


def _command_id(raw: bytes) -> str | None:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None
    value = body.get("command_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _error_code(body: bytes) -> str:
    try:
        return f"({json.loads(body)['errors'][0]['code']})"
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidBody("The request body is not valid JSON.") from None
