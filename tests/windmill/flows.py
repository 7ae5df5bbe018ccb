"""A Windmill flow run in miniature, written from Windmill's source (docs/windmill-flows.md lists the
files): how a webhook's request becomes the flow's input, then each module in order.

- `webhook_args(body, headers, query)`: backend/windmill-api/src/args.rs. A JSON object body gives
  one flow input per top-level key (any other JSON is wrapped as ``body``); ``raw=true`` adds
  ``raw_string``, the body exactly as received; ``include_header=a,b`` adds each named header, its
  name lowercased with ``-`` turned into ``_``; the ``token`` query parameter is never an input.
- `FlowRunner.run(flow, args)`: backend/windmill-worker/src/worker_flow.rs. Modules run in order; a
  module's ``input_transforms`` are evaluated first (``static``: the value as is; ``javascript``: the
  expression, see eval_expr.mjs); a ``rawscript`` or ``script`` module is a job (harness.Worker: the
  job wrapper, ``$res:``/``$var:`` resolved, null arguments with a default dropped). A failed job
  fails the flow with its error. After a successful module, ``stop_after_if.expr`` is evaluated with
  ``result`` and ``flow_input``, as ``Boolean(<expr>)``; when true the flow stops there: "skipped"
  with ``skip_if_stopped``, else a success whose result is that module's. An expression gets 20 s,
  up to 3 tries (windmill-jseval). A step's relative import of a workspace script is fetched from
  ``windmill`` (the stand-in) as a worker's loader does (harness.py).
Only what the shipped flow uses is modelled: no loops, branches, retries or suspends.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
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
    if not exprs:
        return {}
    for attempt in range(3):  # windmill-jseval: 20 s an evaluation, up to 3 tries
        try:
            done = subprocess.run(
                ["node", str(HERE / "eval_expr.mjs")],
                input=json.dumps({"context": context, "exprs": exprs}),
                capture_output=True,
                text=True,
                check=True,
                timeout=20,
            )
            break
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
    values = json.loads(done.stdout)
    for name, value in values.items():
        if isinstance(value, dict) and "__error__" in value:
            raise ValueError(f"the expression of {name} failed: {value['__error__']}")
    return values


@dataclass
class StepRun:
    id: str
    args: dict[str, Any]
    job: Job


@dataclass
class FlowRun:
    status: str  # "success", "skipped" (stopped early with skip_if_stopped) or "failure"
    result: Any
    steps: list[StepRun] = field(default_factory=list)

    def step(self, step_id: str) -> StepRun | None:
        return next((s for s in self.steps if s.id == step_id), None)


@dataclass
class FlowRunner:
    scripts: dict[str, dict[str, Any]]  # the workspace's scripts by path: content and lock
    env: dict[str, str] = field(default_factory=dict)  # what the worker group passes on
    resources: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    python: str = PYTHON
    windmill: tuple[str, str] | None = None  # the stand-in's URL and a token: a step's relative imports

    def run(self, flow: dict[str, Any], flow_input: dict[str, Any]) -> FlowRun:
        run = FlowRun("success", None)
        results: dict[str, Any] = {}
        previous: Any = None
        for module in flow["value"]["modules"]:
            value = module["value"]
            context = {"flow_input": flow_input, "results": results, "previous_result": previous}
            transforms = value.get("input_transforms", {})
            args = {k: t["value"] for k, t in transforms.items() if t["type"] == "static"}
            args.update(evaluate({k: t["expr"] for k, t in transforms.items() if t["type"] == "javascript"}, context))
            job = self._job(value, args, module["id"])
            run.steps.append(StepRun(module["id"], args, job))
            if not job.success:
                run.status, run.result = "failure", job.result
                return run
            results[module["id"]] = previous = run.result = job.result
            stop = module.get("stop_after_if")
            if stop is not None:
                # compute_bool_from_expr evaluates Boolean(<expr>): any value counts, by JavaScript's truth
                stopped = evaluate({"stop": f"Boolean({stop['expr']})"}, {**context, "result": job.result})["stop"]
                if stopped:
                    run.status = "skipped" if stop.get("skip_if_stopped") else "success"
                    return run
        return run

    def _job(self, value: dict[str, Any], args: dict[str, Any], step_id: str) -> Job:
        if value["type"] == "rawscript":
            assert value["language"] == "python3", value["language"]
            content, lock = value["content"], value.get("lock") or ""
        elif value["type"] == "script":
            script = self.scripts[value["path"]]
            content, lock = script["content"], script.get("lock") or ""
        else:
            raise NotImplementedError(f"module type {value['type']} is not modelled")
        folder = Path(tempfile.mkdtemp(prefix="windmill-step-"))
        source = folder / "step.py"
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
        )
        return worker.run(args)


def _lock_file(text: str) -> Path:
    """A step's lock as a file (site() installs from a path), one per distinct content."""
    path = HERE / ".sites" / f"step-{hashlib.sha256(text.encode()).hexdigest()[:16]}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(text)
    return path
