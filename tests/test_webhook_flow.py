"""The shipped flow end to end: the emulator places a call and sends its real webhook sequence, signed
with its own Ed25519 key, to a stand-in for Windmill's flow webhook (tests/windmill/standin.py); the
flow, deployed with the README's windmill-cli commands, runs in the miniature flow runner
(tests/windmill/flows.py, each step a job in the harness); the stream then really flows to a local
WebSocket server. Also: what the first step refuses, checked on its own."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import KEY, ROOT
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
RESOURCE = "u/admin/telnyx"
WEBHOOK_QUERY = f"token={TOKEN}&raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp"


def load_check_event():
    spec = importlib.util.spec_from_file_location("check_event", SHIPPED / "check_event.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_event = load_check_event()


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


def test_the_steps_lock_installs_and_the_step_reads_as_windmill_infers_it():
    lock = (SHIPPED / "check_event.lock").read_text().split()
    assert {line.split("==")[0] for line in lock} == {"cryptography", "cffi", "pycparser"}
    flow = yaml.safe_load((SHIPPED / "flow.yaml").read_text())
    step = flow["value"]["modules"][0]["value"]
    import inspect

    params = inspect.signature(check_event.main).parameters
    assert set(step["input_transforms"]) == set(params)  # every input wired, none unknown
    assert all(p.default is not inspect.Parameter.empty for p in params.values())  # null inputs use the default


# -- the first step on its own --------------------------------------------------------------------
PRIVATE = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(PRIVATE.public_key().public_bytes_raw()).decode()


def event(event_type="call.answered", **payload) -> str:
    payload = {"call_control_id": "v3:abc", **payload}
    return json.dumps({"data": {"event_type": event_type, "id": "evt-1", "payload": payload}, "meta": {}})


def signed(raw: str, at: float | None = None, key: Ed25519PrivateKey = PRIVATE) -> dict:
    stamp = str(int(time.time() if at is None else at))
    return {"raw_string": raw, "telnyx_timestamp": stamp, "telnyx_signature_ed25519": sign(key, stamp, raw.encode())}


def refusal(**kwargs):
    with pytest.raises(check_event.TelnyxWebhookError) as info:
        check_event.main(**{"public_key": PUBLIC, "stream_url": "wss://x.example/m", **kwargs})
    error = info.value
    said = str(error) + repr(error.__dict__)
    assert PUBLIC not in said and not any(v and v in said for k, v in kwargs.items() if k == "telnyx_signature_ed25519")
    return error


def test_call_answered_gives_the_streaming_start_arguments():
    result = check_event.main(
        **signed(event()),
        public_key=PUBLIC,
        stream_url="wss://x.example/m",
        stream_options={"stream_track": "both_tracks"},
    )
    assert result == {
        "start": True,
        "event_type": "call.answered",
        "event_id": "evt-1",
        "call_control_id": "v3:abc",
        "body": {"stream_track": "both_tracks", "stream_url": "wss://x.example/m", "command_id": "evt-1"},
        "why": "call.answered: starting the stream (command_id = the event's data.id, so a redelivery is dropped)",
    }


@pytest.mark.parametrize(
    ("event_type", "payload", "why"),
    [
        ("call.initiated", {}, "call.initiated: this flow starts a stream on call.answered only; nothing to do."),
        ("call.hangup", {}, "call.hangup: this flow starts a stream on call.answered only; nothing to do."),
        ("streaming.started", {}, "streaming.started: Telnyx reports on a stream; nothing to start."),
        (
            "streaming.failed",
            {"failure_reason": "connection_failed"},
            "streaming.failed: the stream did not start (failure_reason: connection_failed); check that stream_url "
            "is reachable from the internet and accepts the WebSocket handshake.",
        ),
    ],
)
def test_other_events_say_why_nothing_starts(event_type, payload, why):
    result = check_event.main(**signed(event(event_type, **payload)), public_key=PUBLIC)
    assert result == {"start": False, "event_type": event_type, "event_id": "evt-1", "why": why}


def test_the_timestamp_tolerance_is_300_s_either_way():
    now = time.time()
    for at in (now - 299, now + 299):
        assert check_event.main(**signed(event(), at), public_key=PUBLIC)["start"] is True
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


def test_verification_off_accepts_an_unsigned_event():
    assert check_event.main(raw_string=event(), verify_signature=False, stream_url="wss://x.example/m")["start"]


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
        settings["public_key"]["value"] = emulator.webhook_public_key
        settings["stream_url"]["value"] = receiver.url
        flow["value"]["modules"][1]["value"]["input_transforms"]["auth"]["value"] = f"$res:{RESOURCE}"
        flow_file.write_text(yaml.safe_dump(flow, sort_keys=False, allow_unicode=True))
        deploy(folder, api)  # the export (again: the edited flow.yaml is kept) and the wmill commands
        assert (
            yaml.safe_load(flow_file.read_text())["value"]["modules"][0]["value"]["input_transforms"]["stream_url"][
                "value"
            ]
            == receiver.url
        )
        for lock in (
            api.workspace.scripts["f/telnyx/streaming_start"]["lock"],
            (SHIPPED / "check_event.lock").read_text(),
        ):
            site(_lock(lock))  # installed once, before flows run in parallel threads
        api.tokens.add(TOKEN)
        api.runner = FlowRunner(
            api.workspace.scripts, env={"TELNYX_BASE_URL": emulator.base_url}, resources={RESOURCE: {"apiKey": KEY}}
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


def streaming_starts(emulator: Emulator, call: str) -> list[dict]:
    return [
        json.loads(r.body) for r in emulator.backend.requests if r.path == f"/v2/calls/{call}/actions/streaming_start"
    ]


def by_event(runs) -> dict[str, list]:
    out: dict[str, list] = {}
    for args, outcome in runs:
        assert not isinstance(outcome, BaseException), outcome
        out.setdefault(args["data"]["event_type"], []).append(outcome)
    return out


def test_a_calls_webhooks_start_exactly_one_stream_that_really_flows(deployed):
    api, emulator, receiver = deployed
    before = len(api.runs)
    call = emulator.ring(webhook_url=webhook_url(api), duration_s=30)
    api.wait_runs(before + 1)
    assert streaming_starts(emulator, call) == []  # call.initiated: nothing sent
    emulator.answer(call)
    runs = api.wait_runs(before + 3)  # call.answered, then streaming.started once the stream connects
    answered = next(e for e in emulator.webhooks.events(call) if e["data"]["event_type"] == "call.answered")
    emulator.webhooks.redeliver(answered)  # Telnyx delivers the same event twice
    api.wait_runs(before + 4)
    time.sleep(1.0)  # a second of audio
    emulator.hangup(call)
    runs = api.wait_runs(before + 6)[before:]  # call.hangup, streaming.stopped
    events = by_event(runs)
    assert sorted(events) == [
        "call.answered",
        "call.hangup",
        "call.initiated",
        "streaming.started",
        "streaming.stopped",
    ]
    assert [r.status for r in events["call.answered"]] == ["success", "success"]
    for skipped in ("call.initiated", "streaming.started", "call.hangup", "streaming.stopped"):
        (run,) = events[skipped]
        assert run.status == "skipped" and [s.id for s in run.steps] == ["event"], skipped
        assert run.result["start"] is False and run.result["why"].startswith(skipped)
    sent = streaming_starts(emulator, call)
    assert [b["command_id"] for b in sent] == [answered["data"]["id"]] * 2  # the duplicate carries the same id
    assert sent[0] == {"stream_track": "both_tracks", "stream_url": receiver.url, "command_id": answered["data"]["id"]}
    assert emulator.call(call).streams_started == 1  # ... so Telnyx (the emulator) dropped it
    for run in events["call.answered"]:
        assert run.result == {"data": {"result": "ok"}}
        assert run.step("start_stream").args["call_control_id"] == call
    (report,) = receiver.wait(1, timeout=20)
    assert report.start["call_control_id"] == call
    assert min(len(report.samples(t)) for t in ("inbound", "outbound")) >= 8000 * 0.5  # half a second, both tracks


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
    before = len(api.runs)
    for body_, headers_, _ in cases.values():
        assert post(api, body_, headers_) == 201
    runs = api.wait_runs(before + len(cases))[before:]
    assert len(runs) == len(cases)
    checks = sorted(outcome.result["extra"]["check"] for _, outcome in runs)
    assert checks == sorted(check for *_, check in cases.values())
    for _, outcome in runs:
        assert outcome.status == "failure" and outcome.result["name"] == "TelnyxWebhookError"
        said = json.dumps(outcome.result)
        assert emulator.webhook_public_key not in said and headers["telnyx-signature-ed25519"] not in said
    assert streaming_starts(emulator, call) == []  # nothing reached Telnyx
    # the same event, genuine, goes through (the checks, not the set-up, refused the others)
    assert post(api, body, headers) == 201
    (run,) = [o for _, o in api.wait_runs(before + len(cases) + 1)[before + len(cases) :]]
    assert run.status == "success" and len(streaming_starts(emulator, call)) == 1


def _signed_raw(emulator: Emulator, body: bytes) -> tuple[bytes, dict]:
    stamp = str(int(time.time()))
    return body, {
        "Content-Type": "application/json",
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": sign(emulator.webhooks._key, stamp, body),
    }


def test_the_webhook_needs_its_token_and_json(deployed):
    api, emulator, _ = deployed
    before = len(api.runs)
    body, headers = emulator.webhooks.signed({"data": {"event_type": "call.initiated", "id": "x", "payload": {}}})
    assert post(api, body, headers, query=WEBHOOK_QUERY.replace(TOKEN, "wrong")) == 401
    assert post(api, b"not json", headers) == 400  # Windmill refuses it before any flow runs ("invalid json")
    time.sleep(0.3)
    assert len(api.runs) == before
