"""A stand-in for Windmill's HTTP API on 127.0.0.1, for running the real windmill-cli against it and
for receiving Telnyx's webhooks as a Windmill flow's webhook does.

It keeps one workspace's folders, scripts, flows, resource types and resources in memory, answers the
routes windmill-cli 1.819 calls for `wmill workspace add` and the per-item push commands (the shapes
follow Windmill's OpenAPI spec, backend/windmill-api/openapi.yaml, and what windmill-cli's bundle
reads of each answer), and records every request. A route it does not know is recorded too and
answered 404, so a test sees every call the CLI made, including ones nobody expected.

``POST /api/w/test/jobs/run/f/<flow path>`` is a flow's async webhook (backend/windmill-api/src/jobs.rs,
run_flow_by_path): it needs a token (``?token=`` or a Bearer header; 401 without), turns the request
into the flow's input (flows.webhook_args), answers 201 with the job's id at once and runs the flow
as stored, with ``runner`` (a flows.FlowRunner), in a thread of its own; ``runs`` holds the outcomes
(``on_run`` is told of each as it ends).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .flows import FlowRun, FlowRunner, webhook_args

USER = {
    "email": "admin@windmill.dev",
    "username": "admin",
    "is_admin": True,
    "is_super_admin": True,
    "operator": False,
    "disabled": False,
    "groups": [],
    "folders": [],
    "folders_owners": [],
}


@dataclass
class Request:
    method: str
    path: str  # without the query
    query: str
    body: Any  # parsed JSON, or the raw text
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Workspace:
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    scripts: dict[str, dict[str, Any]] = field(default_factory=dict)
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    resource_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def snapshot(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


class StandIn:
    """``with StandIn(workspace) as api:`` then ``wmill ... --base-url api.base_url --workspace test``."""

    WORKSPACE = "test"

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = workspace or Workspace()
        self.requests: list[Request] = []
        self.unknown: list[Request] = []
        self.tokens: set[str] = set()  # tokens the webhook accepts
        self.runner: FlowRunner | None = None
        self.runs: list[tuple[dict[str, Any], FlowRun | BaseException]] = []  # (flow input, outcome)
        self.on_run: Callable[[dict[str, Any], FlowRun | BaseException], None] | None = None  # told as each ends
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                raw = data.decode("utf-8", "replace")
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                parts = urlsplit(self.path)
                request = Request(self.command, unquote(parts.path), parts.query, body, data, dict(self.headers))
                with standin._lock:
                    standin.requests.append(request)
                    status, answer = standin.route(request)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> StandIn:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- routes ------------------------------------------------------------------------------------
    def route(self, r: Request) -> tuple[int, Any]:
        ws = self.workspace
        prefix = f"/api/w/{self.WORKSPACE}/"
        if r.method == "GET" and r.path == "/api/users/whoami":
            return 200, USER
        if r.method == "GET" and r.path == "/api/version":
            return 200, "v1.819.0"
        if r.method == "POST" and r.path == "/api/workspaces/exists":  # `wmill workspace add` asks first
            return 200, isinstance(r.body, dict) and r.body.get("id") == self.WORKSPACE
        if not r.path.startswith(prefix):
            return self._unknown(r)
        rest = r.path[len(prefix) :]
        if r.method == "POST" and rest.startswith("jobs/run/f/"):
            return self._webhook(r, rest[len("jobs/run/f/") :])
        if r.method == "GET" and rest.startswith("scripts/raw/p/") and rest.endswith(".py"):
            return self._raw_script(r, rest[len("scripts/raw/p/") : -len(".py")])
        collections = {
            "folders/get/": ws.folders,
            "resources/type/get/": ws.resource_types,
            "scripts/get/p/": ws.scripts,
            "flows/get/": ws.flows,
            "resources/get/": ws.resources,
        }
        if r.method == "GET":
            for route, items in collections.items():
                if rest.startswith(route):
                    item = items.get(rest[len(route) :])
                    return (200, item) if item is not None else (404, "not found")
            return self._unknown(r)
        if r.method != "POST" or not isinstance(r.body, dict):
            return self._unknown(r)
        if rest == "folders/create":
            ws.folders[r.body["name"]] = {"owners": [], "extra_perms": {}, "summary": None, **r.body}
            return 200, "Created"
        if rest.startswith("folders/update/") and rest[len("folders/update/") :] in ws.folders:
            ws.folders[rest[len("folders/update/") :]].update(r.body)
            return 200, "Updated"
        if rest == "resources/type/create":
            ws.resource_types[r.body["name"]] = dict(r.body)
            return 200, "Created"
        if rest.startswith("resources/type/update/") and rest[len("resources/type/update/") :] in ws.resource_types:
            ws.resource_types[rest[len("resources/type/update/") :]].update(r.body)
            return 200, "Updated"
        if rest == "scripts/create":
            old = ws.scripts.get(r.body["path"])
            if old is not None and r.body.get("parent_hash") != old["hash"]:
                return 400, "parent_hash is not the latest version"
            digest = hashlib.sha256(json.dumps(r.body, sort_keys=True).encode()).hexdigest()[:16]
            ws.scripts[r.body["path"]] = {**r.body, "hash": digest, "archived": False, "extra_perms": {}}
            return 201, digest
        if rest == "flows/create":
            ws.flows[r.body["path"]] = dict(r.body)
            return 201, r.body["path"]
        if rest.startswith("flows/update/") and rest[len("flows/update/") :] in ws.flows:
            ws.flows[rest[len("flows/update/") :]] = dict(r.body)
            return 200, r.body["path"]
        return self._unknown(r)

    def _webhook(self, r: Request, path: str) -> tuple[int, Any]:
        token = (parse_qs(r.query).get("token") or [""])[-1]
        bearer = {k.lower(): v for k, v in r.headers.items()}.get("authorization", "")
        if token not in self.tokens and bearer.removeprefix("Bearer ") not in self.tokens:
            return 401, "Unauthorized"
        flow = self.workspace.flows.get(path)
        if flow is None or self.runner is None:
            return 404, f"flow not found at path {path}"
        try:
            args = webhook_args(r.raw, r.headers, r.query)
        except ValueError as error:  # Windmill answers 400 "invalid json" and runs nothing
            return 400, f"invalid json: {error}"
        thread = threading.Thread(target=self._run, args=(flow, args), daemon=True)
        self._threads.append(thread)
        thread.start()
        return 201, str(uuid.uuid4())

    def _raw_script(self, r: Request, path: str) -> tuple[int, Any]:
        """A script's code, as a job's relative import fetches it (scripts/raw/p/<path>.py, with the
        job's token: backend/windmill-api/src/scripts.rs raw_script_by_path)."""
        bearer = {k.lower(): v for k, v in r.headers.items()}.get("authorization", "")
        if bearer.removeprefix("Bearer ") not in self.tokens:
            return 401, "Unauthorized"
        script = self.workspace.scripts.get(path)
        return (200, script["content"]) if script is not None else (404, f"script not found at path {path}")

    def join_runs(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds in all) for the flow runs under way to end."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def started(self) -> int:
        """How many flow runs the webhook has started."""
        return len(self._threads)

    def _run(self, flow: dict[str, Any], args: dict[str, Any]) -> None:
        assert self.runner is not None
        try:
            outcome: FlowRun | BaseException = self.runner.run(flow, args)
        except BaseException as error:  # the miniature broke: the test shows it
            outcome = error
        with self._lock:
            self.runs.append((args, outcome))
        if self.on_run is not None:
            self.on_run(args, outcome)

    def wait_runs(self, count: int, timeout: float = 60.0) -> list[tuple[dict[str, Any], FlowRun | BaseException]]:
        """Wait until ``count`` flow runs have ended; return them in the order they ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.runs) >= count:
                    return list(self.runs)
            time.sleep(0.02)
        raise TimeoutError(f"{len(self.runs)} of {count} flow runs ended in {timeout} s")

    def _unknown(self, r: Request) -> tuple[int, Any]:
        self.unknown.append(r)
        return 404, f"the stand-in does not know {r.method} {r.path}"

    # -- what the tests read -----------------------------------------------------------------------
    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of every request that is not a read."""
        return [(r.method, r.path) for r in self.requests if r.method != "GET"]
