"""A Windmill flow run in miniature, written from Windmill's source (docs/windmill-flows.md lists the
files): how a webhook's request becomes the flow's input, then each module in order.

- `webhook_args(body, headers, query)`: backend/windmill-api/src/args.rs. A JSON object body gives
  one flow input per top-level key (any other JSON is wrapped as ``body``); ``raw=true`` adds
  ``raw_string``, the body exactly as received; ``include_header=a,b`` adds each named header, its
  name lowercased with ``-`` turned into ``_``; the ``token`` query parameter is never an input.
- `FlowRunner.run(flow, args)`: backend/windmill-worker/src/worker_flow.rs. Modules run in order; a
  module's ``input_transforms`` are evaluated first (``static``: the value as is; ``javascript``: the
  expression, see eval_expr.mjs); a ``rawscript`` or ``script`` module is a job (harness.Worker: the
  job wrapper, ``$res:``/``$var:`` resolved, null arguments with a default dropped), a process of its
  own. A failed job fails the flow with its error. After a successful module, ``stop_after_if.expr``
  is evaluated with ``result`` and ``flow_input``, as ``Boolean(<expr>)``; when true the flow stops
  there: "skipped" with ``skip_if_stopped``, else a success whose result is that module's. A
  ``branchone`` module evaluates its branches' predicates inside the flow job (no process) and runs
  the first true branch, or ``default``, as a subflow; an empty branch starts no job (FlowRunner.
  _branchone says what Windmill does, with its functions' names). An expression gets 20 s, up to 3
  tries (windmill-jseval). A step's relative import of a workspace script is fetched from
  ``windmill`` (the stand-in) as a worker's loader does (harness.py).
Only what the shipped flow uses is modelled (no loops, branchall, retries, suspends, skip_if): a
module or branch holding anything else is refused (NotImplementedError), never run differently.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import select
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .harness import HERE, PYTHON, Job, Worker, site


def webhook_args(body: bytes, headers: dict[str, str], query: str) -> dict[str, Any]:
    """The flow's input for a webhook POST with a JSON body (args.rs, try_from_request_body / from_json)."""
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    text = body.decode("utf-8")  # Windmill refuses a body that is not UTF-8 ("invalid utf8")
    if text and not text.startswith("{"):
        args: dict[str, Any] = {"body": json.loads(text)}
    else:
        args = json.loads(text) if text else {}
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in filter(None, params.get("include_header", "").split(",")):
        if name.lower() in lowered:
            args[name.lower().replace("-", "_")] = lowered[name.lower()]
    if params.get("raw") == "true":
        args["raw_string"] = text
    return args


def evaluate(exprs: dict[str, str], context: dict[str, Any]) -> dict[str, Any]:
    """JavaScript expressions, evaluated together by Node as Windmill's worker evaluates them."""
    fast = {name: _looked_up(expr.strip(), context) for name, expr in exprs.items()}
    exprs = {name: expr for name, expr in exprs.items() if fast[name] is _NOT_FOUND}
    known = {name: value for name, value in fast.items() if value is not _NOT_FOUND}
    if not exprs:
        return known
    for attempt in range(3):  # windmill-jseval: 20 s an evaluation, up to 3 tries
        try:
            values = _NODE.ask({"context": context, "exprs": exprs}, timeout=20)
            break
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
    for name, value in values.items():
        if isinstance(value, dict) and "__error__" in value:
            raise ValueError(f"the expression of {name} failed: {value['__error__']}")
    return {**known, **values}


_NOT_FOUND = object()


class _Evaluator:
    """One Node process (eval_expr.mjs --serve) answering one request a line, as a worker evaluates
    expressions in its own process: no Node start per expression. Started when first asked, started
    again after a timeout; closed when this process exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def ask(self, request: dict[str, Any], timeout: float) -> Any:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = subprocess.Popen(
                    ["node", str(HERE / "eval_expr.mjs"), "--serve"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            process = self._process
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            if not select.select([process.stdout], [], [], timeout)[0]:
                process.kill()
                process.wait()
                self._process = None
                raise subprocess.TimeoutExpired(process.args, timeout)
            return json.loads(process.stdout.readline())

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                assert self._process.stdin is not None
                self._process.stdin.close()  # Node ends at the end of its input
                self._process.wait(10)
                self._process = None


_NODE = _Evaluator()
atexit.register(_NODE.close)


def _looked_up(expr: str, context: dict[str, Any]) -> Any:
    """What Windmill answers without running JavaScript (js_eval.rs, eval_timeout): an expression that
    is exactly ``previous_result`` (or ``result``, where it is in scope), and
    try_exact_property_access: ``flow_input.<key>`` or ``flow_input["<key>"]`` of a key the flow input
    has (the rest is the key, dots and all). Anything else: _NOT_FOUND (JavaScript decides)."""
    if expr in ("previous_result", "result") and expr in context:
        return context[expr]
    flow_input = context.get("flow_input") or {}
    key = None
    if expr.startswith("flow_input."):
        key = expr[len("flow_input.") :]
    elif expr.startswith('flow_input["') and expr.endswith('"]') and len(expr) > len('flow_input[""]'):
        key = expr[len('flow_input["') : -len('"]')]
    return flow_input[key] if key is not None and key in flow_input else _NOT_FOUND


def predicate(expr: str, flow_inputs: list[dict[str, Any]]) -> list[bool | str]:
    """A branch predicate (``Boolean(<expr>)``) on many flow inputs at once, each at step 0 of a flow
    (``result`` and ``previous_result`` are its arguments): True/False each, or the error's text."""
    batch = [
        {
            "context": {"flow_input": args, "results": {}, "previous_result": args, "result": args},
            "exprs": {"pred": f"Boolean({expr})"},
        }
        for args in flow_inputs
    ]
    done = subprocess.run(
        ["node", "--max-old-space-size=2048", str(HERE / "eval_expr.mjs")],
        input=json.dumps({"batch": batch}),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    answers = [item["pred"] for item in json.loads(done.stdout)]
    return [a["__error__"] if isinstance(a, dict) else a for a in answers]


def find_module(flow: dict[str, Any], module_id: str) -> dict[str, Any]:
    """The module ``module_id`` of a flow, at any depth (inside a branch too)."""

    def walk(modules: list[dict[str, Any]]) -> dict[str, Any] | None:
        for module in modules:
            if module["id"] == module_id:
                return module
            value = module["value"]
            inner = [b["modules"] for b in value.get("branches", [])] + [value.get("default") or []]
            for found in filter(None, map(walk, inner)):
                return found
        return None

    found = walk(flow["value"]["modules"])
    if found is None:
        raise KeyError(f"the flow has no module {module_id!r}")
    return found


@dataclass
class StepRun:
    id: str
    args: dict[str, Any]
    job: Job


@dataclass
class FlowRun:
    status: str  # "success", "skipped" (stopped early with skip_if_stopped) or "failure"
    result: Any
    steps: list[StepRun] = field(default_factory=list)  # every script job, branches included: each a process
    flow_jobs: int = 1  # this flow's job and one per branch taken: run inside a worker, no process
    branches: dict[str, int | None] = field(default_factory=dict)  # branchone id -> branch taken (None: default)

    def step(self, step_id: str) -> StepRun | None:
        return next((s for s in self.steps if s.id == step_id), None)

    @property
    def processes(self) -> int:
        """The jobs that started a process (each a cold Python here): the script jobs."""
        return len(self.steps)


@dataclass
class _Ended:
    """How a module list (a flow, or a branch's subflow) ended: ``stop`` is None when it ran to its end,
    else the ``skip_if_stopped`` of the early stop that ended it."""

    failed: bool
    result: Any
    stop: bool | None = None


# What a module may hold for this miniature; anything else (retry, sleep, suspend, skip_if, mock, ...)
# is refused rather than silently run differently from Windmill.
MODULE_KEYS = {"id", "summary", "value", "stop_after_if"}
BRANCH_KEYS = {"summary", "expr", "modules"}


@dataclass
class FlowRunner:
    scripts: dict[str, dict[str, Any]]  # the workspace's scripts by path: content and lock
    env: dict[str, str] = field(default_factory=dict)  # what the worker group passes on
    resources: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    python: str = PYTHON
    windmill: tuple[str, str] | None = None  # the stand-in's URL and a token: a step's relative imports
    flags: tuple[str, ...] = ()  # more interpreter options for every job (harness.Worker.flags)

    def run(self, flow: dict[str, Any], flow_input: dict[str, Any]) -> FlowRun:
        run = FlowRun("success", None)
        ended = self._modules(flow["value"]["modules"], flow_input, run)
        run.result = ended.result
        run.status = "failure" if ended.failed else "skipped" if ended.stop else "success"
        return run

    def _modules(self, modules: list[dict[str, Any]], flow_input: dict[str, Any], run: FlowRun) -> _Ended:
        """One flow job's modules, in order (push_next_flow_job, then update_flow_status_after_job_completion)."""
        results: dict[str, Any] = {}
        previous: Any = flow_input  # what step 0 sees as previous_result: the flow's arguments
        last: Any = "{}"  # the result an empty branch hands on: the last job's, "{}" before any
        for module in modules:
            unknown = set(module) - MODULE_KEYS
            if unknown:
                raise NotImplementedError(f"module {module['id']}: {sorted(unknown)} are not modelled")
            value = module["value"]
            context = {"flow_input": flow_input, "results": results, "previous_result": previous}
            if value["type"] == "branchone":
                ended = self._branchone(module, context, last, run)
                if ended.failed or ended.stop is not None:
                    return ended
                result = ended.result
            else:
                transforms = value.get("input_transforms", {})
                args = {k: t["value"] for k, t in transforms.items() if t["type"] == "static"}
                exprs = {k: t["expr"] for k, t in transforms.items() if t["type"] == "javascript"}
                args.update(evaluate(exprs, context))
                job = self._job(value, args, module["id"])
                run.steps.append(StepRun(module["id"], args, job))
                if not job.success:
                    return _Ended(True, job.result)
                result = job.result
            results[module["id"]] = previous = last = result
            stop = module.get("stop_after_if")
            if stop is not None:
                # compute_bool_from_expr evaluates Boolean(<expr>): any value counts, by JavaScript's truth
                stopped = evaluate({"stop": f"Boolean({stop['expr']})"}, {**context, "result": result})["stop"]
                if stopped:
                    return _Ended(False, result, bool(stop.get("skip_if_stopped")))
        return _Ended(False, last)

    def _branchone(self, module: dict[str, Any], context: dict[str, Any], last: Any, run: FlowRun) -> _Ended:
        """compute_next_flow_transform's BranchOne: each branch's ``expr`` in order, as
        ``Boolean(<expr>)`` inside the flow job (no process), ``result`` and ``previous_result`` being
        the previous result; the first true one is taken, else ``default``. An expression that throws
        fails the flow (the ``?`` after compute_bool_from_expr: handle_flow's error ends the flow job).
        An empty branch starts no job at all (payload_from_modules gives None: EmptyInnerFlows) and the
        flow goes on with the last job's result; a branch with modules is a subflow job of its own
        (RawFlow, no process) whose arguments are the flow's (so its ``flow_input`` is the same). An
        early stop inside it stops this flow too, with its skip flag (stop_early_override: a branchone
        is not a "flow" module); its failure fails this flow."""
        value = module["value"]
        chosen: int | None = None
        for index, branch in enumerate(value["branches"]):
            unknown = set(branch) - BRANCH_KEYS
            if unknown:
                raise NotImplementedError(f"branch {index} of {module['id']}: {sorted(unknown)} are not modelled")
            bool_context = {**context, "result": context["previous_result"]}
            try:
                taken = evaluate({"pred": f"Boolean({branch['expr']})"}, bool_context)["pred"]
            except ValueError as error:
                return _Ended(True, {"error": {"name": "ExecutionErr", "message": str(error)}})
            if taken:
                chosen = index
                break
        run.branches[module["id"]] = chosen
        modules = value["default"] if chosen is None else value["branches"][chosen]["modules"]
        if not modules:
            return _Ended(False, last)
        run.flow_jobs += 1
        return self._modules(modules, context["flow_input"], run)

    def _job(self, value: dict[str, Any], args: dict[str, Any], step_id: str) -> Job:
        if value["type"] == "rawscript":
            assert value["language"] == "python3", value["language"]
            content, lock = value["content"], value.get("lock") or ""
        elif value["type"] == "script":
            script = self.scripts[value["path"]]
            content, lock = script["content"], script.get("lock") or ""
        else:
            raise NotImplementedError(f"module type {value['type']} is not modelled")
        with tempfile.TemporaryDirectory(prefix="windmill-step-") as folder:  # removed after the job, as Windmill does
            source = Path(folder) / "step.py"
            source.write_text(content)
            worker = Worker(
                site(_lock_file(lock), self.python),
                env=self.env,
                resources=self.resources,
                variables=self.variables,
                script=source,
                step_id=step_id,
                python=self.python,
                windmill=self.windmill,
                flags=self.flags,
            )
            return worker.run(args)


def _lock_file(text: str) -> Path:
    """A step's lock as a file (site() installs from a path), one per distinct content."""
    path = HERE / ".sites" / f"step-{hashlib.sha256(text.encode()).hexdigest()[:16]}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(text)
    return path
