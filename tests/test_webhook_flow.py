"""The shipped flow end to end: the emulator rings a call and sends its real webhook sequence, signed
with its own Ed25519 key, to a stand-in for Windmill's flow webhook (tests/windmill/standin.py); the
flow, deployed with the README's windmill-cli commands, runs in the miniature flow runner
(tests/windmill/flows.py, its one step a job in the harness, importing the deployed script as a
worker's loader does); nobody but the flow answers the call; the stream then really flows to a local
WebSocket server. Also: the step on its own, against the emulator."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import AUTH, KEY, ROOT
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_windmill_deploy import FLOW, deploy
from windmill.flows import FlowRunner, webhook_args
from windmill.harness import site
from windmill.standin import StandIn

from emulator import Emulator
from emulator.webhooks import sign
from stream_server import Receiver

SHIPPED = ROOT / "deploy" / "start_stream_on_answer.flow"
TOKEN = "wm-webhook-token-1234"
RESOURCE = "u/you/telnyx"
WEBHOOK_QUERY = f"token={TOKEN}&raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp"


def load_step():
    """The step as a job imports it: f/telnyx/streaming_start (script.py) importable by its path, as
    Windmill's loader fetches it, then the step's module."""
    workspace = Path(tempfile.mkdtemp(prefix="workspace-"))
    (workspace / "f" / "telnyx").mkdir(parents=True)
    (workspace / "f" / "telnyx" / "streaming_start.py").write_text((ROOT / "script.py").read_text())
    sys.path.insert(0, str(workspace))
    spec = importlib.util.spec_from_file_location("on_call_event", SHIPPED / "on_call_event.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


step = load_step()
DEPLOYED_SCRIPT = sys.modules["f.telnyx.streaming_start"]  # script.py, as the step imports it


# -- the flow file -----------------------------------------------------------------------------------
def validate(path: Path) -> list:
    out = subprocess.run(
        ["node", str(ROOT / "tests" / "windmill" / "validate_flow.mjs"), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)["errors"]


def test_the_flow_passes_windmills_own_validator(tmp_path):
    assert validate(SHIPPED / "flow.yaml") == []
    broken = yaml.safe_load((SHIPPED / "flow.yaml").read_text())
    del broken["value"]["modules"][0]["value"]["language"]  # the validator can fail: a step without a language
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(broken))
    assert [e["message"] for e in validate(tmp_path / "flow.yaml")] == ["must have required property 'language'"]


def test_the_steps_dependencies_are_where_windmill_finds_them():
    import ast
    import inspect

    lock = {line.split("==")[0] for line in (SHIPPED / "on_call_event.lock").read_text().split()}
    script_lock = {
        line.split("==")[0] for line in (ROOT / "deploy" / "streaming_start.script.lock").read_text().split()
    }
    assert lock == script_lock | {"cryptography", "cffi", "pycparser"}  # its own, and the script's it imports
    source = (SHIPPED / "on_call_event.py").read_text()
    header = source.split("# ///")[1]
    for dependency in ("cryptography>=", "requests>=", "urllib3>=", "jsonschema>="):
        assert dependency in header
    tree = ast.parse(source)
    top_level = {  # Windmill infers requirements from the imports above main (top level) only
        (node.module or "").split(".")[0]
        for node in tree.body[: next(i for i, n in enumerate(tree.body) if getattr(n, "name", "") == "main")]
        if isinstance(node, ast.ImportFrom)
    }
    assert {"cryptography", "f"} <= top_level
    flow = yaml.safe_load((SHIPPED / "flow.yaml").read_text())
    (module,) = flow["value"]["modules"]
    params = inspect.signature(step.main).parameters
    assert set(module["value"]["input_transforms"]) == set(params)  # every input wired, none unknown
    assert module["value"]["input_transforms"]["auth"]["value"] == "$res:u/you/telnyx"
    assert "u/admin" not in (SHIPPED / "flow.yaml").read_text()  # one placeholder, the README's


# -- the step on its own, against the emulator -----------------------------------------------------------
PRIVATE = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(PRIVATE.public_key().public_bytes_raw()).decode()
STREAM = "wss://x.example/m"


def event(event_type="call.answered", event_id="evt-1", **payload) -> str:
    payload = {"call_control_id": "v3:abc", **payload}
    return json.dumps({"data": {"event_type": event_type, "id": event_id, "payload": payload}, "meta": {}})


def signed(raw: str, at: float | None = None, key: Ed25519PrivateKey = PRIVATE) -> dict:
    stamp = str(int(time.time() if at is None else at))
    return {"raw_string": raw, "telnyx_timestamp": stamp, "telnyx_signature_ed25519": sign(key, stamp, raw.encode())}


def run_step(raw: str, **settings):
    return step.main(**{"auth": AUTH, **signed(raw), "public_key": PUBLIC, "stream_url": STREAM, **settings})


def refusal(**kwargs):
    with pytest.raises(step.TelnyxWebhookError) as info:
        step.main(**{"auth": AUTH, "public_key": PUBLIC, "stream_url": STREAM, **kwargs})
    error = info.value
    said = str(error) + repr(error.__dict__)
    assert PUBLIC not in said and not any(v and v in said for k, v in kwargs.items() if k == "telnyx_signature_ed25519")
    return error


def commands(emulator: Emulator, call: str, action: str) -> list[dict]:
    return [json.loads(r.body) for r in emulator.backend.requests if r.path == f"/v2/calls/{call}/actions/{action}"]


def test_an_incoming_call_is_answered_with_its_stream_in_one_command(emulator):
    call = emulator.ring()
    result = run_step(
        event("call.initiated", call_control_id=call, direction="incoming"),
        stream_options={"stream_track": "both_tracks"},
    )
    assert result == {
        "event_type": "call.initiated",
        "event_id": "evt-1",
        "call_control_id": call,
        "action": "answered_with_stream",
        "why": "incoming call answered with its stream (one command; call.answered will start nothing more)",
        "telnyx": {"data": {"result": "ok"}},
    }
    (sent,) = commands(emulator, call, "answer")
    assert sent == {
        "stream_track": "both_tracks",
        "stream_url": STREAM,
        "client_state": step.STREAMING_MARK,
        "command_id": "evt-1",
    }
    assert emulator.call(call).state == "answered" and emulator.call(call).streams_started == 1
    answered = [e for e in emulator.webhooks.events(call) if e["data"]["event_type"] == "call.answered"]
    assert answered[0]["data"]["payload"]["client_state"] == step.STREAMING_MARK  # Telnyx carries it back
    again = run_step(
        event("call.answered", "evt-2", call_control_id=call, direction="incoming", client_state=step.STREAMING_MARK)
    )
    assert again["action"] == "none" and again["why"] == "call.answered: the stream started with the answer."
    assert commands(emulator, call, "streaming_start") == []


def test_a_stream_answer_cannot_carry_starts_after_the_answer(emulator):
    call = emulator.ring()
    options = {"stream_auth_token": "s3cret-token", "stream_track": "inbound_track"}
    first = run_step(event("call.initiated", call_control_id=call, direction="incoming"), stream_options=options)
    assert first["action"] == "answered" and first["why"] == (
        "incoming call answered; the stream starts on call.answered (stream_auth_token: not taken by answer)"
    )
    assert commands(emulator, call, "answer") == [{"command_id": "evt-1"}] and emulator.call(call).streams_started == 0
    second = run_step(
        event("call.answered", "evt-2", call_control_id=call, direction="incoming"), stream_options=options
    )
    assert second["action"] == "stream_started"
    assert commands(emulator, call, "streaming_start") == [{**options, "stream_url": STREAM, "command_id": "evt-2"}]


def test_an_outgoing_leg_streams_when_the_callee_answers(emulator):
    call = emulator.ring(direction="outgoing")
    initiated = run_step(event("call.initiated", call_control_id=call, direction="outgoing"))
    assert initiated["action"] == "none"
    assert initiated["why"] == "call.initiated (outgoing): the callee answers; the stream starts on call.answered."
    emulator.pick_up(call)
    answered = run_step(event("call.answered", "evt-2", call_control_id=call, direction="outgoing"))
    assert answered["action"] == "stream_started" and emulator.call(call).streams_started == 1
    assert commands(emulator, call, "answer") == []
    other = emulator.ring(direction="outgoing")
    emulator.pick_up(other)
    off = run_step(event("call.answered", call_control_id=other, direction="outgoing"), stream_outgoing=False)
    assert off == {**off, "action": "none", "why": "call.answered (outgoing): stream_outgoing is off."}
    assert commands(emulator, other, "streaming_start") == []


def test_a_call_that_ended_before_the_command_is_nothing_to_do(emulator):
    call = emulator.ring()
    emulator.hangup(call)
    result = run_step(event("call.initiated", call_control_id=call, direction="incoming"))
    assert (
        result["action"] == "none" and result["why"] == "the call ended before the command reached it: nothing to do."
    )
    assert len(commands(emulator, call, "answer")) == 1  # sent, refused with 90018, nothing else


def test_answer_incoming_off_leaves_the_call_to_your_app(emulator):
    call = emulator.ring()
    result = run_step(event("call.initiated", call_control_id=call, direction="incoming"), answer_incoming=False)
    assert result["action"] == "none" and commands(emulator, call, "answer") == []


def test_bad_stream_settings_are_refused_before_anything_is_sent(emulator):
    call = emulator.ring()
    with pytest.raises(DEPLOYED_SCRIPT.TelnyxInputError, match=r"body\.stream_track is invalid"):
        run_step(
            event("call.initiated", call_control_id=call, direction="incoming"), stream_options={"stream_track": "left"}
        )
    assert emulator.backend.requests == []


@pytest.mark.parametrize(
    ("event_type", "payload", "why"),
    [
        (
            "call.hangup",
            {},
            "call.hangup: this flow answers on call.initiated and streams on call.answered; nothing to do.",
        ),
        ("streaming.started", {}, "streaming.started: Telnyx reports on a stream; nothing to start."),
        (
            "streaming.failed",
            {"failure_reason": "connection_failed"},
            "streaming.failed: the stream did not start (failure_reason: connection_failed); check that stream_url "
            "is reachable from the internet and accepts the WebSocket handshake.",
        ),
    ],
)
def test_other_events_say_why_nothing_happens(event_type, payload, why):
    result = run_step(event(event_type, **payload))
    assert result == {"event_type": event_type, "event_id": "evt-1", "action": "none", "why": why}


def test_the_timestamp_tolerance_is_300_s_either_way():
    now = time.time()
    for at in (now - 299, now + 299):
        assert step.main(auth=AUTH, **signed(event("call.hangup"), at), public_key=PUBLIC)["action"] == "none"
    for at, when in ((now - 302, "old"), (now + 302, "in the future")):
        error = refusal(**signed(event(), at))
        assert error.check == "timestamp" and when in str(error) and "replayed or delayed" in str(error)


def test_forged_altered_and_unsigned_events_are_refused():
    forged = refusal(**signed(event(), key=Ed25519PrivateKey.generate()))
    assert (forged.check, str(forged)) == (
        "signature",
        "the signature does not match (not shown): the event was forged or altered on the way, or public_key is "
        "another account's. Nothing was sent to Telnyx.",
    )
    altered = signed(event())
    altered["raw_string"] = altered["raw_string"].replace("v3:abc", "v3:xyz")
    assert refusal(**altered).check == "signature"
    unsigned = refusal(raw_string=event())
    assert unsigned.check == "signature" and "include_header=telnyx-signature-ed25519,telnyx-timestamp" in str(unsigned)
    garbage = refusal(**{**signed(event()), "telnyx_signature_ed25519": "%%%not base64"})
    assert garbage.check == "signature"


def test_settings_and_bodies_that_cannot_be_checked_are_named():
    assert refusal(**signed(event()), public_key="").check == "public_key"
    assert "(base64 of 32 bytes; not shown)" in str(refusal(**signed(event()), public_key="bm90IGEga2V5"))
    assert refusal(raw_string=None).check == "raw_body"
    assert "raw=true" in str(refusal(raw_string=""))
    not_json = refusal(**signed("<html>hi</html>"))
    assert (not_json.check, str(not_json)) == (
        "envelope",
        "the webhook body is not JSON (it starts '<html>hi</html>'): not a Telnyx event.",
    )
    assert "no data object" in str(refusal(**signed('{"event": "x"}')))
    no_type = refusal(**signed(json.dumps({"data": {"id": "e", "payload": {}}})))
    assert str(no_type) == "data.event_type is missing from the webhook body: not a Telnyx event envelope."
    no_call = refusal(**signed(json.dumps({"data": {"event_type": "call.answered", "id": "e", "payload": {}}})))
    assert str(no_call).startswith("data.payload.call_control_id is missing from this call.answered event")


def test_verification_off_accepts_an_unsigned_event(emulator):
    call = emulator.create_call()
    result = step.main(auth=AUTH, raw_string=event(call_control_id=call), verify_signature=False, stream_url=STREAM)
    assert result["action"] == "stream_started"


# -- the webhook input, as Windmill builds it ---------------------------------------------------------
def test_the_webhook_input_has_the_bodys_keys_the_raw_body_and_the_headers():
    body = json.dumps({"data": {"id": "e"}, "meta": {"attempt": 1}}).encode()
    headers = {"Telnyx-Signature-Ed25519": "c2ln", "telnyx-timestamp": "17", "X-Other": "no"}
    args = webhook_args(body, headers, WEBHOOK_QUERY)
    assert args == {
        "data": {"id": "e"},
        "meta": {"attempt": 1},
        "raw_string": body.decode(),
        "telnyx_signature_ed25519": "c2ln",
        "telnyx_timestamp": "17",
    }
    assert webhook_args(body, headers, f"token={TOKEN}") == {"data": {"id": "e"}, "meta": {"attempt": 1}}


# -- end to end ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The README's deploy commands, with the flow's settings filled in as a user does before pushing."""
    folder = tmp_path_factory.mktemp("deploy") / "my-workspace"
    receiver = Receiver(tmp_path_factory.mktemp("received")).start()
    emulator = Emulator(api_key=KEY).start()
    api = StandIn().__enter__()
    try:
        subprocess.run([sys.executable, "-m", "deploy.export", str(folder)], cwd=ROOT, check=True, capture_output=True)
        flow_file = folder / "f" / "telnyx" / "start_stream_on_answer.flow" / "flow.yaml"
        flow = yaml.safe_load(flow_file.read_text())
        settings = flow["value"]["modules"][0]["value"]["input_transforms"]
        assert settings["auth"]["value"] == f"$res:{RESOURCE}"  # the placeholder the README names
        settings["public_key"]["value"] = emulator.webhook_public_key
        settings["stream_url"]["value"] = receiver.url
        flow_file.write_text(yaml.safe_dump(flow, sort_keys=False, allow_unicode=True))
        deploy(folder, api)  # the export (again: the edited flow.yaml is kept) and the wmill commands
        assert yaml.safe_load(flow_file.read_text())["value"]["modules"][0]["value"]["input_transforms"] == settings
        site(_lock((SHIPPED / "on_call_event.lock").read_text()))  # installed once, before flows run in threads
        api.tokens.add(TOKEN)
        api.runner = FlowRunner(
            api.workspace.scripts,
            env={"TELNYX_BASE_URL": emulator.base_url},
            resources={RESOURCE: {"apiKey": KEY}},
            windmill=(api.base_url, TOKEN),  # the step imports f/telnyx/streaming_start from the workspace
        )
        yield api, emulator, receiver
    finally:
        api.__exit__(None, None, None)
        emulator.stop()
        receiver.stop()


def _lock(text: str) -> Path:
    from windmill.flows import _lock_file

    return _lock_file(text)


def webhook_url(api: StandIn) -> str:
    return f"{api.base_url}api/w/test/jobs/run/f/{FLOW}?{WEBHOOK_QUERY}"


def runs_of(api: StandIn, call: str, count: int) -> list:
    """Wait until ``count`` flow runs for ``call`` have ended; return (event type, outcome) of each."""
    deadline = time.monotonic() + 90
    while True:
        ours = [
            (args["data"]["event_type"], outcome)
            for args, outcome in api.wait_runs(0)
            if args.get("data", {}).get("payload", {}).get("call_control_id") == call
        ]
        if len(ours) >= count:
            for kind, outcome in ours:
                assert not isinstance(outcome, BaseException), outcome
                assert outcome.status in ("success", "skipped"), (kind, outcome.result)
            return ours
        assert time.monotonic() < deadline, ours
        time.sleep(0.02)


def actions(runs: list) -> list[tuple[str, str]]:
    return sorted((kind, outcome.result["action"]) for kind, outcome in runs)


def event_of(emulator: Emulator, call: str, event_type: str) -> dict:
    return next(e for e in emulator.webhooks.events(call) if e["data"]["event_type"] == event_type)


def test_an_incoming_call_nobody_else_answers_is_answered_once_and_streams_once(deployed):
    api, emulator, receiver = deployed
    call = emulator.ring(webhook_url=webhook_url(api), duration_s=30)  # nobody but the flow answers it
    report = receiver.wait_media(frames=50, call_control_id=call)  # audio arrived: answered, with its stream
    runs = runs_of(api, call, 3)  # call.initiated, call.answered, streaming.started
    for event_type in ("call.initiated", "call.answered"):  # Telnyx delivers both again
        emulator.webhooks.redeliver(event_of(emulator, call, event_type))
    runs = runs_of(api, call, 5)
    assert actions(runs) == [
        ("call.answered", "none"),
        ("call.answered", "none"),
        ("call.initiated", "answered_with_stream"),
        ("call.initiated", "answered_with_stream"),
        ("streaming.started", "none"),
    ]
    initiated = event_of(emulator, call, "call.initiated")["data"]["id"]
    assert [b["command_id"] for b in commands(emulator, call, "answer")] == [initiated] * 2  # the repeat is dropped
    assert commands(emulator, call, "streaming_start") == []  # the answer started the stream: no second command
    assert emulator.call(call).streams_started == 1
    for kind, outcome in runs:
        assert [s.id for s in outcome.steps] == ["event"]  # one job per webhook
        assert outcome.status == ("success" if outcome.result["action"] != "none" else "skipped"), kind
    emulator.hangup(call)
    runs_of(api, call, 7)  # call.hangup, streaming.stopped: skipped
    assert min(len(report.samples(t)) for t in ("inbound", "outbound")) >= 8000 * 0.5  # both tracks


def test_an_outgoing_call_streams_when_the_callee_picks_up(deployed):
    api, emulator, receiver = deployed
    call = emulator.ring(direction="outgoing", webhook_url=webhook_url(api), pickup_after_s=0.3, duration_s=30)
    runs = runs_of(api, call, 3)
    assert actions(runs) == [
        ("call.answered", "stream_started"),
        ("call.initiated", "none"),
        ("streaming.started", "none"),
    ]
    answered = event_of(emulator, call, "call.answered")["data"]["id"]
    assert [b["command_id"] for b in commands(emulator, call, "streaming_start")] == [answered]
    assert commands(emulator, call, "answer") == []  # the callee answered it
    receiver.wait_media(frames=25, call_control_id=call)
    emulator.hangup(call)
    assert emulator.call(call).streams_started == 1


def test_a_call_hung_up_while_ringing_streams_nothing_and_fails_nothing(deployed):
    api, emulator, _ = deployed
    call = emulator.ring(webhook_url=webhook_url(api))
    emulator.hangup(call)  # the caller gives up before the flow's job has even started
    runs = runs_of(api, call, 2)
    assert actions(runs) == [("call.hangup", "none"), ("call.initiated", "none")]
    assert event_of(emulator, call, "call.hangup")["data"]["payload"]["hangup_cause"] == "originator_cancel"
    assert commands(emulator, call, "streaming_start") == [] and emulator.call(call).streams_started == 0


def post(api: StandIn, body: bytes, headers: dict, query: str = WEBHOOK_QUERY) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{api.base_url}api/w/test/jobs/run/f/{FLOW}?{query}",
        data=body,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_forged_replayed_and_unsigned_events_start_nothing(deployed):
    api, emulator, _ = deployed
    call = emulator.create_call()  # answered, ready to stream: only the checks stand in the way
    real = {
        "data": {
            "record_type": "event",
            "event_type": "call.answered",
            "id": "evt-h",
            "payload": {"call_control_id": call},
        },
        "meta": {"attempt": 1},
    }
    body, headers = emulator.webhooks.signed(real)
    stranger = Ed25519PrivateKey.generate()
    stamp = headers["telnyx-timestamp"]
    cases = {
        "forged": (body, {**headers, "telnyx-signature-ed25519": sign(stranger, stamp, body)}, "signature"),
        "altered": (body.replace(b"evt-h", b"evt-i"), headers, "signature"),
        "unsigned": (body, {"Content-Type": "application/json"}, "signature"),
        "replayed": (*emulator.webhooks.signed(real, int(time.time()) - 330), "timestamp"),
        "from the future": (*emulator.webhooks.signed(real, int(time.time()) + 330), "timestamp"),
        "not an envelope": (*_signed_raw(emulator, b'{"hello": "world"}'), "envelope"),
    }
    for body_, headers_, _ in cases.values():
        assert post(api, body_, headers_) == 201
    posted = {body_.decode() for body_, _, _ in cases.values()}
    runs = wait_for(lambda: [r for r in api.wait_runs(0) if r[0].get("raw_string") in posted], len(cases))
    checks = sorted(outcome.result["extra"]["check"] for _, outcome in runs)
    assert checks == sorted(check for *_, check in cases.values())
    for _, outcome in runs:
        assert outcome.status == "failure" and outcome.result["name"] == "TelnyxWebhookError"
        said = json.dumps(outcome.result)
        assert emulator.webhook_public_key not in said and headers["telnyx-signature-ed25519"] not in said
    assert commands(emulator, call, "streaming_start") == []  # nothing reached Telnyx
    # the same event, genuine, goes through (the checks, not the set-up, refused the others)
    same_body = lambda: [o.status for args, o in api.wait_runs(0) if args.get("raw_string") == body.decode()]  # noqa: E731
    refused = same_body()
    assert post(api, body, headers) == 201
    assert sorted(wait_for(same_body, len(refused) + 1)) == sorted([*refused, "success"])
    assert len(commands(emulator, call, "streaming_start")) == 1


def wait_for(runs, count: int) -> list:
    """Wait until ``runs()`` holds ``count`` flow runs; return them."""
    deadline = time.monotonic() + 90
    while len(found := runs()) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.02)
    return found


def _signed_raw(emulator: Emulator, body: bytes) -> tuple[bytes, dict]:
    stamp = str(int(time.time()))
    return body, {
        "Content-Type": "application/json",
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": sign(emulator.webhooks._key, stamp, body),
    }


def test_the_webhook_needs_its_token_and_json(deployed):
    api, emulator, _ = deployed
    before = api.started
    body, headers = emulator.webhooks.signed({"data": {"event_type": "call.initiated", "id": "x", "payload": {}}})
    assert post(api, body, headers, query=WEBHOOK_QUERY.replace(TOKEN, "wrong")) == 401
    assert post(api, b"not json", headers) == 400  # Windmill refuses it before any flow runs ("invalid json")
    assert api.started == before  # answered before any run began
