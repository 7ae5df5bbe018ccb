"""The silence a caller hears, and what the webhook flow costs the workers.

silence  from Telnyx's first webhook of an incoming call to the first media frame at your stream
         server, with the settings a user gets (only auth, public_key and stream_url filled in), for
         each design of the webhook flow, each step a cold Windmill job; and the jobs that started a
         process for the whole call (every event of it delivered: call.initiated, call.answered,
         streaming.started, call.hangup, streaming.stopped).
step     the answering step's own cold job (the process Windmill starts for an incoming call.initiated)
         against a floor measured in the same run: a bare cold Python, run as the job is (``-S``, the
         step's lock only), that imports requests, jsonschema and cryptography, checks one Ed25519
         signature and POSTs one JSON body (bench/step_floor.py); and what the step imports beyond
         that floor (``-X importtime``).

Designs (each a flow held by the Windmill stand-in, run by the miniature runner, tests/windmill):
  answer+stream, 1 step (shipped)  the route lets call.initiated through; the step answers with the stream
  the same, every event a job      the step alone, without the route: what the flow was before it
  answer+stream, 2 steps           the signature checked in a step of its own (2 jobs)
  answer, then start, 1 step       a stream field answer does not take: streaming_start on call.answered
  answer, then start, 2 steps      the same with a checking step each time
The emulator answers and streams in real time, as Telnyx does; the jobs are cold processes.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from windmill.flows import FlowRunner, _lock_file, find_module, webhook_args  # noqa: E402
from windmill.harness import PYTHON, site  # noqa: E402
from windmill.standin import StandIn  # noqa: E402

from emulator import Emulator  # noqa: E402
from stream_server import Receiver  # noqa: E402

FLOW_DIR = ROOT / "deploy" / "start_stream_on_answer.flow"
KEY = "KEYbench_0123456789abcdefBENCH"
TOKEN = "bench-token-0123"
QUERY = f"token={TOKEN}&raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp"
RESOURCE = "u/you/telnyx"  # the flow's own placeholder: the bench fills in what a user must, nothing else

# A step that only checks the signature (for the two-step designs): cryptography and the check, as
# the shipped step does them; it hands the raw body on to the step that acts.
CHECK_STEP = """# /// script
# dependencies = ["cryptography>=42,<51"]
# ///
import base64
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def main(raw_string: str, telnyx_signature_ed25519: str, telnyx_timestamp: str, public_key: str) -> dict:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
    key.verify(base64.b64decode(telnyx_signature_ed25519), f"{telnyx_timestamp}|{raw_string}".encode())
    if abs(time.time() - int(telnyx_timestamp)) > 300:
        raise ValueError("replayed")
    return {"raw_string": raw_string}
"""


def shipped_flow(public_key: str, stream_url: str) -> dict[str, Any]:
    """The shipped flow as windmill-cli pushes it (the step's code and lock inline), with only what a
    user must fill in: public_key and stream_url (auth stays the shipped resource path)."""
    flow = yaml.safe_load((FLOW_DIR / "flow.yaml").read_text())
    value = find_module(flow, "event")["value"]
    value["content"] = (FLOW_DIR / "on_call_event.py").read_text()
    value["lock"] = (FLOW_DIR / "on_call_event.lock").read_text()
    value["input_transforms"]["public_key"]["value"] = public_key
    value["input_transforms"]["stream_url"]["value"] = stream_url
    return flow


def _flow(public_key: str, stream_url: str, design: dict[str, bool]) -> dict[str, Any]:
    flow = shipped_flow(public_key, stream_url)
    branch = flow["value"]["modules"][0]["value"]["branches"][0]
    (event,) = branch["modules"]
    if not design["answer_with_stream"]:  # a field answer does not take: the stream starts on call.answered
        event["value"]["input_transforms"]["stream_options"]["value"] = {"stream_auth_token": "bench-token"}
    if design["two_steps"]:
        check = {
            "id": "check",
            "value": {
                "type": "rawscript",
                "language": "python3",
                "content": CHECK_STEP,
                "lock": "cryptography==50.0.2\ncffi==2.1.1\npycparser==2.23\n",
                "input_transforms": {
                    name: {"type": "javascript", "expr": f"flow_input.{name}"}
                    for name in ("raw_string", "telnyx_signature_ed25519", "telnyx_timestamp")
                }
                | {"public_key": {"type": "static", "value": public_key}},
            },
        }
        act = copy.deepcopy(event)
        act["value"]["input_transforms"]["raw_string"] = {"type": "javascript", "expr": "results.check.raw_string"}
        act["value"]["input_transforms"]["verify_signature"]["value"] = False
        branch["modules"] = [check, act]
    if not design["routed"]:  # every event runs the step(s): the flow before the route
        flow["value"]["modules"] = branch["modules"]
    return flow


DESIGNS = {
    "answer+stream, 1 step (shipped)": {"routed": True, "two_steps": False, "answer_with_stream": True},
    "the same, every event a job": {"routed": False, "two_steps": False, "answer_with_stream": True},
    "answer+stream, 2 steps": {"routed": True, "two_steps": True, "answer_with_stream": True},
    "answer, then start, 1 step": {"routed": True, "two_steps": False, "answer_with_stream": False},
    "answer, then start, 2 steps": {"routed": True, "two_steps": True, "answer_with_stream": False},
}


def _runner(api: StandIn, emulator: Emulator, flags: tuple[str, ...] = ()) -> FlowRunner:
    api.workspace.scripts["f/telnyx/streaming_start"] = {"content": (ROOT / "script.py").read_text()}
    return FlowRunner(
        api.workspace.scripts,
        env={"TELNYX_BASE_URL": emulator.base_url},
        resources={RESOURCE: {"apiKey": KEY}},
        windmill=(api.base_url, TOKEN),
        flags=flags,
    )


def measure(calls: int = 3) -> dict[str, Any]:
    """Per design: median and max seconds from the first webhook to the first media frame, and the
    jobs that started a process for the whole call."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        with Emulator(api_key=KEY) as emulator, Receiver(Path(folder)) as receiver, StandIn() as api:
            api.tokens.add(TOKEN)
            api.runner = _runner(api, emulator)
            site(_lock_file((FLOW_DIR / "on_call_event.lock").read_text()))  # installed before timing
            for name, design in DESIGNS.items():
                path = f"f/bench/design_{len(api.workspace.flows)}"
                api.workspace.flows[path] = _flow(emulator.webhook_public_key, receiver.url, design)
                url = f"{api.base_url}api/w/test/jobs/run/f/{path}?{QUERY}"
                silences, processes = [], []
                warmup = 1 if calls > 1 else 0  # the first call warms the OS caches: not counted
                for _ in range(calls + warmup):
                    began = time.monotonic()
                    call = emulator.ring(webhook_url=url, duration_s=2)
                    report = receiver.wait_media(1, timeout=60, call_control_id=call)
                    silences.append(min(a[0] for a in report.arrivals.values()) - began)
                    emulator.hangup(call)
                    processes.append(sum(outcome.processes for _, outcome in _wait_runs(api, emulator, call)))
                out[name] = {
                    "silence_s_median": round(statistics.median(silences[warmup:]), 3),
                    "silence_s_max": round(max(silences[warmup:]), 3),
                    "processes_per_call": max(processes[warmup:]),
                    "calls": calls,
                }
    return out


def _wait_runs(api: StandIn, emulator: Emulator, call: str) -> list[tuple[str, Any]]:
    """The runs of every event of the call (it has hung up), once all have ended."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = [
            (args["data"]["event_type"], outcome)
            for args, outcome in api.wait_runs(0)
            if args.get("data", {}).get("payload", {}).get("call_control_id") == call
        ]
        sent = emulator.webhooks.events(call)
        if "call.hangup" in {e["data"]["event_type"] for e in sent} and len(runs) == len(sent):
            for kind, outcome in runs:
                if isinstance(outcome, BaseException) or outcome.status == "failure":
                    raise SystemExit(f"a flow run failed ({kind}): {outcome}")
            return runs
        time.sleep(0.02)
    raise SystemExit(f"the runs of call {call} did not end in 60 s")


def step_versus_floor(rounds: int = 9) -> dict[str, Any]:
    """The answering step's cold job for an incoming call.initiated, the shipped settings, against the
    floor (bench/step_floor.py) run the same way, interleaved; medians, and what the step imports
    beyond the floor."""
    lock = _lock_file((FLOW_DIR / "on_call_event.lock").read_text())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site(lock))}
    step_s: list[float] = []
    floor_s: list[float] = []
    with Emulator(api_key=KEY, media=False) as emulator, StandIn() as api:
        api.tokens.add(TOKEN)
        runner = _runner(api, emulator)
        flow = shipped_flow(emulator.webhook_public_key, "wss://media.example.com/stream")
        for _ in range(rounds + 1):  # the first round warms the OS caches: not counted
            body, headers = _incoming(emulator)
            run = runner.run(flow, webhook_args(body, headers, QUERY))
            if run.status != "success" or run.result.get("action") != "answered_with_stream":
                raise SystemExit(f"the step did not answer: {run.result}")
            step_s.append(run.steps[0].job.wall_s)
            floor_s.append(_floor_once(emulator, env))
        imports = _imports_beyond_floor(runner, flow, emulator, env)
    step, floor = statistics.median(step_s[1:]), statistics.median(floor_s[1:])
    return {
        "rounds": rounds,
        "step_s_median": round(step, 4),
        "floor_s_median": round(floor, 4),
        "ratio": round(step / floor, 3),
        "imports_beyond_floor_ms": imports,
    }


def _incoming(emulator: Emulator) -> tuple[bytes, dict[str, str]]:
    """A new ringing incoming call's call.initiated, signed by the emulator as Telnyx signs it."""
    call = emulator.ring()
    payload = {"call_control_id": call, "direction": "incoming"}
    data = {"event_type": "call.initiated", "id": str(uuid.uuid4()), "payload": payload}
    return emulator.webhooks.signed({"data": data, "meta": {"attempt": 1}})


def _floor_once(emulator: Emulator, env: dict[str, str]) -> float:
    body, headers = _incoming(emulator)
    call = json.loads(body)["data"]["payload"]["call_control_id"]
    command = [
        PYTHON,
        "-S",
        "-s",
        str(ROOT / "bench" / "step_floor.py"),
        f"{emulator.base_url}/calls/{call}/actions/answer",
        KEY,
        emulator.webhook_public_key,
        headers["telnyx-signature-ed25519"],
        headers["telnyx-timestamp"],
        body.decode(),
        json.dumps({"stream_url": "wss://media.example.com/stream"}),
    ]
    began = time.perf_counter()
    subprocess.run(command, env=env, cwd=tempfile.gettempdir(), check=True, capture_output=True, timeout=60)
    return time.perf_counter() - began


def _imports_beyond_floor(runner: FlowRunner, flow: dict[str, Any], emulator: Emulator, env: dict[str, str]) -> dict:
    """Milliseconds (self time, -X importtime) of each module the step's job imports and the floor does
    not, the largest first: what the step costs beyond the packages."""
    timed = FlowRunner(**{**runner.__dict__, "flags": ("-X", "importtime")})
    body, headers = _incoming(emulator)
    step_imports = _importtime(timed.run(flow, webhook_args(body, headers, QUERY)).steps[0].job.logs)
    code = "import base64, sys, jsonschema, requests\nfrom cryptography.hazmat.primitives.asymmetric import ed25519"
    done = subprocess.run(
        [PYTHON, "-S", "-s", "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    floor_imports = _importtime(done.stderr)
    beyond = {name: ms for name, ms in step_imports.items() if name not in floor_imports}
    return {name: round(ms, 1) for name, ms in sorted(beyond.items(), key=lambda kv: -kv[1]) if ms >= 0.5}


def _importtime(text: str) -> dict[str, float]:
    """-X importtime's lines: module -> its own milliseconds."""
    out = {}
    for line in text.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, _, name = line[len("import time:") :].split("|")
            out[name.strip()] = int(own) / 1000
    return out


if __name__ == "__main__":
    for design, figures in measure().items():
        print(f"{design:34} {figures}")
    print(step_versus_floor())
