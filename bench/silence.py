"""The silence a caller hears: from Telnyx's first webhook of an incoming call to the first media frame
at your stream server, for each design of the webhook flow, each step a cold Windmill job.

Designs (each a flow held by the Windmill stand-in, run by the miniature runner, tests/windmill):
  answer+stream, 1 step   the shipped flow: call.initiated -> answer with the stream fields (1 job)
  answer+stream, 2 steps  the same, the signature checked in a step of its own (2 jobs)
  answer, then start, 1 step  answer without the stream; streaming_start on call.answered (2 jobs)
  answer, then start, 2 steps  the same with a checking step each time (4 jobs)
The emulator answers and streams in real time, as Telnyx does; the jobs are cold processes.
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from windmill.flows import FlowRunner  # noqa: E402
from windmill.harness import site  # noqa: E402
from windmill.standin import StandIn  # noqa: E402

from emulator import Emulator  # noqa: E402
from stream_server import Receiver  # noqa: E402

FLOW_DIR = ROOT / "deploy" / "start_stream_on_answer.flow"
KEY = "KEYbench_0123456789abcdefBENCH"
TOKEN = "bench-token-0123"
QUERY = f"token={TOKEN}&raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp"

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


def _flow(public_key: str, stream_url: str, two_steps: bool, answer_with_stream: bool) -> dict[str, Any]:
    flow = yaml.safe_load((FLOW_DIR / "flow.yaml").read_text())
    (module,) = flow["value"]["modules"]
    value = module["value"]
    value["content"] = (FLOW_DIR / "on_call_event.py").read_text()
    value["lock"] = (FLOW_DIR / "on_call_event.lock").read_text()
    settings = value["input_transforms"]
    settings["auth"]["value"] = "$res:u/bench/telnyx"
    settings["public_key"]["value"] = public_key
    settings["stream_url"]["value"] = stream_url
    if not answer_with_stream:  # a field answer does not take: the stream starts on call.answered
        settings["stream_options"]["value"] = {"stream_track": "both_tracks", "stream_auth_token": "bench-token"}
    if not two_steps:
        return flow
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
    act = copy.deepcopy(module)
    act["value"]["input_transforms"]["raw_string"] = {"type": "javascript", "expr": "results.check.raw_string"}
    act["value"]["input_transforms"]["verify_signature"]["value"] = False
    flow["value"]["modules"] = [check, act]
    return flow


DESIGNS = {  # name: (two steps, answer with the stream)
    "answer+stream, 1 step (shipped)": (False, True),
    "answer+stream, 2 steps": (True, True),
    "answer, then start, 1 step": (False, False),
    "answer, then start, 2 steps": (True, False),
}


def measure(calls: int = 3) -> dict[str, Any]:
    """Per design: median and max seconds from the first webhook to the first media frame, jobs per call."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        with Emulator(api_key=KEY) as emulator, Receiver(Path(folder)) as receiver, StandIn() as api:
            api.tokens.add(TOKEN)
            api.workspace.scripts["f/telnyx/streaming_start"] = {"content": (ROOT / "script.py").read_text()}
            api.runner = FlowRunner(
                api.workspace.scripts,
                env={"TELNYX_BASE_URL": emulator.base_url},
                resources={"u/bench/telnyx": {"apiKey": KEY}},
                windmill=(api.base_url, TOKEN),
            )
            from windmill.flows import _lock_file

            site(_lock_file((FLOW_DIR / "on_call_event.lock").read_text()))  # installed before timing
            for name, (two_steps, with_stream) in DESIGNS.items():
                path = (
                    "f/bench/" + name.split(",")[0].replace(" ", "_").replace("+", "_") + ("_2" if two_steps else "_1")
                )
                api.workspace.flows[path] = _flow(emulator.webhook_public_key, receiver.url, two_steps, with_stream)
                url = f"{api.base_url}api/w/test/jobs/run/f/{path}?{QUERY}"
                silences, jobs = [], []
                warmup = 1 if calls > 1 else 0  # the first call warms the OS caches: not counted
                for _ in range(calls + warmup):
                    before = api.started
                    began = time.monotonic()
                    call = emulator.ring(webhook_url=url, duration_s=2)
                    report = receiver.wait_media(1, timeout=60, call_control_id=call)
                    silence = min(a[0] for a in report.arrivals.values()) - began
                    emulator.hangup(call)
                    runs = _wait_runs(api, before, call)
                    silences.append(silence)
                    on_path = [o for kind, o in runs if kind == "call.initiated"]  # answered (with the stream?)
                    on_path += [o for kind, o in runs if kind == "call.answered" and o.result["action"] != "none"]
                    jobs.append(sum(len(o.steps) for o in on_path))
                out[name] = {
                    "silence_s_median": round(statistics.median(silences[warmup:]), 3),
                    "silence_s_max": round(max(silences[warmup:]), 3),
                    "jobs_before_media": jobs[-1],
                    "calls": calls,
                }
    return out


def _wait_runs(api: StandIn, before: int, call: str) -> list[tuple[str, Any]]:
    """The call's runs for call.initiated and call.answered, once both have ended."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = [
            (args["data"]["event_type"], outcome)
            for args, outcome in api.wait_runs(0)
            if args.get("data", {}).get("payload", {}).get("call_control_id") == call
        ]
        kinds = [kind for kind, _ in runs]
        if "call.initiated" in kinds and "call.answered" in kinds:
            for kind, outcome in runs:
                if isinstance(outcome, BaseException) or outcome.status == "failure":
                    raise SystemExit(f"a flow run failed ({kind}): {outcome}")
            return runs
        time.sleep(0.02)
    raise SystemExit(f"the runs of call {call} did not end in 60 s")


if __name__ == "__main__":
    for design, figures in measure().items():
        print(f"{design:34} {figures}")
