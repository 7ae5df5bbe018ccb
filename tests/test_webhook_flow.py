"""The shipped flow end to end: the emulator rings a call and sends its real webhook sequence, signed
with its own Ed25519 key, to a stand-in for Windmill's flow webhook (tests/windmill/standin.py); the
flow, deployed with the README's windmill-cli commands, runs in the miniature flow runner
(tests/windmill/flows.py: its branch predicate evaluated in Node as the flow's own run evaluates it,
its step a job in the harness, importing the deployed script as a worker's loader does); nobody but
the flow answers the call; the stream then really flows to a local WebSocket server. Each run counts
the jobs that started a process: one per call. Also: the predicate against hostile bodies and against
the step itself, and the step on its own, against the emulator."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import AUTH, KEY, ROOT
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_windmill_deploy import FLOW, deploy
from windmill.flows import FlowRunner, find_module, predicate, webhook_args
from windmill.harness import site
from windmill.standin import StandIn

from emulator import Emulator
from emulator.webhooks import sign
from stream_server import Receiver

SHIPPED = ROOT / "deploy" / "start_stream_on_answer.flow"
PLACEHOLDER = "wss://your-server.example.com/media"  # flow.yaml's stream_url as shipped
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
SHIPPED_FLOW = yaml.safe_load((SHIPPED / "flow.yaml").read_text())
ROUTE = SHIPPED_FLOW["value"]["modules"][0]
PREDICATE = ROUTE["value"]["branches"][0]["expr"]


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
    broken = copy.deepcopy(SHIPPED_FLOW)
    del find_module(broken, "event")["value"]["language"]  # the validator can fail: a step without a language
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(broken))
    assert "must have required property 'language'" in [e["message"] for e in validate(tmp_path / "flow.yaml")]
    no_default = copy.deepcopy(SHIPPED_FLOW)
    del no_default["value"]["modules"][0]["value"]["default"]  # and it reads the branch too
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(no_default))
    assert "must have required property 'default'" in [e["message"] for e in validate(tmp_path / "flow.yaml")]


def test_one_branch_lets_events_through_to_the_one_step():
    """The route: a branchone whose one branch holds the step; the default branch is empty (no job)."""
    assert [m["id"] for m in SHIPPED_FLOW["value"]["modules"]] == ["route"]
    assert ROUTE["value"]["type"] == "branchone" and ROUTE["value"]["default"] == []
    (branch,) = ROUTE["value"]["branches"]
    assert [m["id"] for m in branch["modules"]] == ["event"]
    assert find_module(SHIPPED_FLOW, "event")["stop_after_if"] == {
        "expr": 'result.action === "none"',
        "skip_if_stopped": True,
    }
    # what Windmill's evaluator rewrites or adds (js_eval.rs): none of it may be in the predicate
    for word in ("return ", "results", "flow_env", "variable(", "resource(", "error", "//"):
        assert word not in PREDICATE, word
    assert step.STREAMING_MARK in PREDICATE  # the mark the step puts on a call it answered with its stream


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
    module = find_module(SHIPPED_FLOW, "event")
    params = inspect.signature(step.main).parameters
    assert set(module["value"]["input_transforms"]) == set(params)  # every input wired, none unknown
    assert module["value"]["input_transforms"]["auth"]["value"] == "$res:u/you/telnyx"
    assert "u/admin" not in (SHIPPED / "flow.yaml").read_text()  # one placeholder, the README's


def test_the_shipped_settings_serve_a_voice_bot():
    """Filled in: auth, public_key, stream_url. The rest, as shipped, is a voice bot's stream."""
    transforms = find_module(SHIPPED_FLOW, "event")["value"]["input_transforms"]
    settings_ = {k: t["value"] for k, t in transforms.items() if t["type"] == "static"}
    assert settings_["voice_bot"] is True and settings_["stream_options"] == {}
    assert settings_["answer_incoming"] is True and settings_["verify_signature"] is True
    assert step.VOICE_BOT == {
        "stream_track": "inbound_track",
        "stream_codec": "PCMU",  # a PCMA caller too reaches the bot in what it sends back (Telnyx transcodes)
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
    }
    assert set(step.VOICE_BOT) <= set(DEPLOYED_SCRIPT.ANSWER_FIELDS)  # so it starts with the answer: one job
    with_url = {**step.VOICE_BOT, "stream_url": STREAM}
    assert DEPLOYED_SCRIPT.check_answer_body(with_url) == with_url  # answer takes each as it is
    transforms = find_module(SHIPPED_FLOW, "event")["value"]["input_transforms"]
    assert transforms["stream_url"]["value"] == step.PLACEHOLDER_URL  # the placeholder the step refuses
    assert step.RECORDER == {"stream_track": "both_tracks"}


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


def test_an_incoming_call_is_answered_with_a_voice_bots_stream_in_one_command(emulator):
    """Only auth, public_key and stream_url set: the caller's audio only, and the bot can speak (rtp, PCMU)."""
    call = emulator.ring()
    result = run_step(event("call.initiated", call_control_id=call, direction="incoming"))
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
        "stream_url": STREAM,
        "stream_track": "inbound_track",
        "stream_codec": "PCMU",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
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


@pytest.mark.parametrize(
    ("settings_", "stream"),
    [
        (  # a field of yours replaces that field only
            {"stream_options": {"stream_track": "both_tracks", "stream_bidirectional_codec": "PCMA"}},
            {
                "stream_track": "both_tracks",
                "stream_codec": "PCMU",
                "stream_bidirectional_mode": "rtp",
                "stream_bidirectional_codec": "PCMA",
            },
        ),
        (
            {"stream_options": {"stream_codec": "PCMU", "stream_bidirectional_target_legs": "self"}},
            {**step.VOICE_BOT, "stream_codec": "PCMU", "stream_bidirectional_target_legs": "self"},
        ),
        (  # null: none sent
            {"stream_options": {"stream_bidirectional_mode": None, "stream_codec": None}},
            {"stream_track": "inbound_track"},
        ),
        ({"stream_options": {"stream_codec": "PCMA"}}, {**step.VOICE_BOT, "stream_codec": "PCMA"}),
        ({"voice_bot": False}, {"stream_track": "both_tracks"}),  # a recorder or transcriber
        ({"voice_bot": False, "stream_options": {"stream_track": "inbound_track"}}, {"stream_track": "inbound_track"}),
        (
            {"voice_bot": False, "stream_options": {"stream_bidirectional_mode": "mp3"}},
            {"stream_track": "both_tracks", "stream_bidirectional_mode": "mp3"},
        ),
        ({"stream_options": {"stream_url": "wss://y.example/other"}, "stream_url": ""}, step.VOICE_BOT),
    ],
)
def test_every_stream_field_you_set_is_honoured(emulator, settings_, stream):
    call = emulator.ring()
    run_step(event("call.initiated", call_control_id=call, direction="incoming"), **settings_)
    (sent,) = commands(emulator, call, "answer")
    url = settings_.get("stream_url", STREAM) or settings_["stream_options"]["stream_url"]
    assert sent == {**stream, "stream_url": url, "client_state": step.STREAMING_MARK, "command_id": "evt-1"}


def test_a_stream_answer_cannot_carry_starts_after_the_answer(emulator):
    call = emulator.ring()
    options = {"stream_auth_token": "s3cret-token"}
    first = run_step(event("call.initiated", call_control_id=call, direction="incoming"), stream_options=options)
    assert first["action"] == "answered" and first["why"] == (
        "incoming call answered; the stream starts on call.answered (stream_auth_token: not taken by answer)"
    )
    assert commands(emulator, call, "answer") == [{"command_id": "evt-1"}] and emulator.call(call).streams_started == 0
    second = run_step(
        event("call.answered", "evt-2", call_control_id=call, direction="incoming"), stream_options=options
    )
    assert second["action"] == "stream_started"
    assert commands(emulator, call, "streaming_start") == [
        {**step.VOICE_BOT, **options, "stream_url": STREAM, "command_id": "evt-2"}
    ]


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
            "streaming.failed: the stream did not start (failure_reason: connection_failed); check the host, port "
            "and path of stream_url, and that the server there accepts the WebSocket handshake (Telnyx connects "
            "from the internet).",
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


# -- the branch predicate: evaluated in the flow's own run, before any check ------------------------------
def flow_input(data=None, **body) -> dict:
    """What the flow receives for a webhook whose body holds ``data`` (and ``body``'s keys), as Windmill
    builds it (args.rs): the body's keys, the raw body, the two headers."""
    raw = json.dumps({"data": data, "meta": {"attempt": 1}, **body} if data is not None or body else {}).encode()
    headers = {"telnyx-timestamp": "1700000000", "telnyx-signature-ed25519": "c2ln"}
    return webhook_args(raw, headers, WEBHOOK_QUERY)


def envelope(event_type, event_id="evt-1", **payload) -> dict:
    return {"record_type": "event", "event_type": event_type, "id": event_id, "payload": payload}


THROUGH = {  # each event -> whether the step runs for it
    "incoming call.initiated": (envelope("call.initiated", call_control_id="v3:a", direction="incoming"), True),
    "outgoing call.initiated": (envelope("call.initiated", call_control_id="v3:a", direction="outgoing"), False),
    "call.answered": (envelope("call.answered", call_control_id="v3:a", direction="outgoing"), True),
    "call.answered of a call answered with its stream": (
        envelope("call.answered", call_control_id="v3:a", client_state=step.STREAMING_MARK),
        False,
    ),
    "call.answered with another client_state": (
        envelope("call.answered", call_control_id="v3:a", client_state=base64.b64encode(b"mine").decode()),
        True,
    ),
    "streaming.failed": (envelope("streaming.failed", call_control_id="v3:a", failure_reason="x"), True),
    "streaming.started": (envelope("streaming.started", call_control_id="v3:a"), False),
    "streaming.stopped": (envelope("streaming.stopped", call_control_id="v3:a"), False),
    "call.hangup": (envelope("call.hangup", call_control_id="v3:a", hangup_cause="normal_clearing"), False),
    "call.bridged": (envelope("call.bridged", call_control_id="v3:a"), False),
    "call.dtmf.received": (envelope("call.dtmf.received", call_control_id="v3:a", digit="1"), False),
    "message.received": (envelope("message.received"), False),
    "call.initiated without call_control_id": (envelope("call.initiated", direction="incoming"), False),
    "call.answered without an id": (envelope("call.answered", "", call_control_id="v3:a"), False),
}


def test_the_predicate_lets_through_only_what_may_need_the_step():
    names = list(THROUGH)
    answers = predicate(PREDICATE, [flow_input(THROUGH[n][0]) for n in names])
    assert dict(zip(names, answers)) == {n: THROUGH[n][1] for n in names}


HOSTILE = {  # flow inputs a stranger can make Windmill build from one POST: none may make it throw
    "no body": {},
    "a body that is not an object (wrapped as body)": webhook_args(b"[1, 2]", {}, WEBHOOK_QUERY),
    "a string body": webhook_args(b'"call.initiated"', {}, WEBHOOK_QUERY),
    "data null": flow_input(None, hello="world"),
    "data a string": flow_input("call.initiated"),
    "data a number": flow_input(7),
    "data a list": flow_input([envelope("call.initiated")]),
    "data true": flow_input(True),
    "event_type an object": flow_input({"event_type": {"toString": "x"}, "id": "e", "payload": {}}),
    "event_type a list": flow_input({"event_type": ["call.initiated"], "id": "e", "payload": {}}),
    "payload null": flow_input({"event_type": "call.initiated", "id": "e", "payload": None}),
    "payload a string": flow_input({"event_type": "call.answered", "id": "e", "payload": "v3:a"}),
    "payload a list": flow_input({"event_type": "call.answered", "id": "e", "payload": ["v3:a"]}),
    "__proto__ keys": webhook_args(
        b'{"data": {"__proto__": {"event_type": "call.answered"}, "id": "e", "payload": {"__proto__": null}}}',
        {},
        WEBHOOK_QUERY,
    ),
    "call_control_id a number": flow_input(envelope("call.answered", call_control_id=5)),
    "deep nesting": flow_input({"event_type": "call.hangup", "id": "e", "payload": json.loads("[" * 120 + "]" * 120)}),
    "a 4 MB body": flow_input(envelope("call.hangup", call_control_id="v3:a", padding="x" * 4_000_000)),
    "a 4 MB event_type": flow_input(envelope("call.answered" + "x" * 4_000_000, call_control_id="v3:a")),
}


def test_the_predicate_cannot_throw_whatever_the_body():
    """Windmill fails the run when a branch predicate throws (compute_bool_from_expr's error ends the
    flow's own run): the predicate must give false, not an error, for anything a stranger can post."""
    names = list(HOSTILE)
    answers = predicate(PREDICATE, [HOSTILE[n] for n in names])
    assert dict(zip(names, answers)) == dict.fromkeys(names, False)


def test_windmill_fails_a_run_whose_predicate_throws_and_runs_no_job_for_an_empty_branch():
    """The miniature does what Windmill does (the reason the test above matters)."""
    runner = FlowRunner({})
    flow = copy.deepcopy(SHIPPED_FLOW)
    flow["value"]["modules"][0]["value"]["branches"][0]["expr"] = "flow_input.data.payload.direction === 'x'"
    thrown = runner.run(flow, flow_input("call.initiated"))
    assert thrown.status == "failure" and "TypeError" in thrown.result["error"]["message"]
    assert thrown.processes == 0
    dropped = runner.run(SHIPPED_FLOW, flow_input(THROUGH["call.hangup"][0]))
    assert (dropped.status, dropped.processes, dropped.flow_jobs, dropped.branches) == (
        "success",
        0,
        1,
        {"route": None},
    )


EDGES = ["call.initiated", "call.answered", "streaming.failed", "call.hangup", "incoming", "outgoing", "v3:a", "e", ""]
EDGES += [step.STREAMING_MARK, " ", "\ufeff", "\x1c", "Incoming", "CALL.ANSWERED", "call.initiated "]  # near misses
TEXT = st.sampled_from(EDGES) | st.text(max_size=4)
SCALARS = TEXT | st.none() | st.booleans() | st.integers(-2, 2)
VALUES = SCALARS | st.lists(SCALARS, max_size=2) | st.dictionaries(TEXT, SCALARS, max_size=2)
PAYLOADS = (
    st.fixed_dictionaries(
        {}, optional={k: VALUES for k in ("call_control_id", "direction", "client_state", "failure_reason")}
    )
    | VALUES
)
DATA = st.fixed_dictionaries({}, optional={"event_type": VALUES, "id": VALUES, "payload": PAYLOADS}) | VALUES


def never_dropped_if_acted_on(emulator: Emulator, batch: list) -> int:
    """The predicate on each body's flow input, then the step itself on the same body, signed, the
    emulator as Telnyx: every event for which the step sent a command (with the settings that act the
    most, the defaults) was let through. Returns how many the step acted on."""
    let_through = predicate(PREDICATE, [flow_input(data) for data in batch])
    assert set(let_through) <= {True, False}, let_through  # never an error
    acted_on = 0
    for data, through in zip(batch, let_through):
        before = len(emulator.backend.requests)
        raw = json.dumps({"data": data, "meta": {}})
        try:
            step.main(**{"auth": AUTH, **signed(raw), "public_key": PUBLIC, "stream_url": STREAM})
        except Exception:  # a refusal, or Telnyx's answer for a call it does not know
            pass
        acted = len(emulator.backend.requests) > before
        assert through or not acted, data
        acted_on += acted
    return acted_on


ABSENT = object()


def test_the_predicate_never_drops_an_event_the_step_would_act_on(emulator):
    """Every combination of the fields the step decides on, near misses included."""
    batch = [
        envelope(event_type, event_id, **{k: v for k, v in payload.items() if v is not ABSENT})
        for event_type in ("call.initiated", "call.answered", "streaming.failed", "call.hangup", "Call.Answered")
        for event_id in ("e", "", None)
        for payload in (
            {"call_control_id": call_id, "direction": direction, "client_state": state}
            for call_id in ("v3:a", "", " ", "\ufeff", None, 5, ABSENT)
            for direction in ("incoming", "outgoing", "Incoming", None, ABSENT)
            for state in (step.STREAMING_MARK, step.STREAMING_MARK + " ", "eA==", None, ABSENT)
        )
    ]
    assert never_dropped_if_acted_on(emulator, batch) == 25  # the corpus reaches the step's commands (v3:a)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(DATA, min_size=50, max_size=50))
def test_the_predicate_never_drops_an_event_the_step_would_act_on_whatever_the_body(emulator, batch):
    never_dropped_if_acted_on(emulator, batch)


# -- end to end ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The README's deploy commands, with only the settings a user must fill in (auth's resource at the
    README's path, public_key, stream_url): the rest as shipped."""
    folder = tmp_path_factory.mktemp("deploy") / "my-workspace"
    receiver = Receiver(tmp_path_factory.mktemp("received")).start()
    emulator = Emulator(api_key=KEY).start()
    api = StandIn().__enter__()
    try:
        subprocess.run([sys.executable, "-m", "deploy.export", str(folder)], cwd=ROOT, check=True, capture_output=True)
        flow_file = folder / "f" / "telnyx" / "start_stream_on_answer.flow" / "flow.yaml"
        flow = yaml.safe_load(flow_file.read_text())
        settings_ = find_module(flow, "event")["value"]["input_transforms"]
        assert settings_["auth"]["value"] == f"$res:{RESOURCE}"  # the placeholder the README names
        settings_["public_key"]["value"] = emulator.webhook_public_key
        settings_["stream_url"]["value"] = receiver.url
        flow_file.write_text(yaml.safe_dump(flow, sort_keys=False, allow_unicode=True))
        deploy(folder, api)  # the export (again: the edited flow.yaml is kept) and the wmill commands
        assert find_module(yaml.safe_load(flow_file.read_text()), "event")["value"]["input_transforms"] == settings_
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
    """(event type, the step's action, or "no job" when the predicate ended the run) of each run."""
    return sorted((kind, o.result["action"] if o.processes else "no job") for kind, o in runs)


def processes(runs: list) -> int:
    return sum(outcome.processes for _, outcome in runs)


def event_of(emulator: Emulator, call: str, event_type: str) -> dict:
    return next(e for e in emulator.webhooks.events(call) if e["data"]["event_type"] == event_type)


def test_an_incoming_call_nobody_else_answers_is_answered_once_and_streams_once_in_one_job(deployed):
    api, emulator, receiver = deployed
    call = emulator.ring(webhook_url=webhook_url(api), duration_s=30)  # nobody but the flow answers it
    report = receiver.wait_media(frames=50, call_control_id=call)  # audio arrived: answered, with its stream
    runs = runs_of(api, call, 3)  # call.initiated, call.answered, streaming.started
    emulator.hangup(call)
    runs = runs_of(api, call, 5)  # call.hangup, streaming.stopped
    assert actions(runs) == [
        ("call.answered", "no job"),
        ("call.hangup", "no job"),
        ("call.initiated", "answered_with_stream"),
        ("streaming.started", "no job"),
        ("streaming.stopped", "no job"),
    ]
    assert processes(runs) == 1  # every event of the call delivered: one job started a process
    for kind, outcome in runs:
        assert outcome.status == "success", kind  # the answer, and each event that needed no job
        assert [s.id for s in outcome.steps] == (["event"] if kind == "call.initiated" else [])
    for event_type in ("call.initiated", "call.answered"):  # Telnyx delivers both again
        emulator.webhooks.redeliver(event_of(emulator, call, event_type))
    runs = runs_of(api, call, 7)
    assert processes(runs) == 2  # the repeated call.initiated is a job again, its command dropped by Telnyx
    initiated = event_of(emulator, call, "call.initiated")["data"]["id"]
    (answer_sent, repeat) = commands(emulator, call, "answer")
    assert answer_sent == repeat and answer_sent["command_id"] == initiated
    assert {k: answer_sent[k] for k in step.VOICE_BOT} == step.VOICE_BOT  # the shipped defaults: a bot's stream
    assert commands(emulator, call, "streaming_start") == []  # the answer started the stream: no second command
    assert emulator.call(call).streams_started == 1
    assert len(report.samples("inbound")) >= 8000 * 0.5 and not report.samples("outbound")  # the caller only


def test_an_outgoing_call_streams_when_the_callee_picks_up_in_one_job(deployed):
    api, emulator, receiver = deployed
    call = emulator.ring(direction="outgoing", webhook_url=webhook_url(api), pickup_after_s=0.3, duration_s=30)
    runs = runs_of(api, call, 3)
    receiver.wait_media(frames=25, call_control_id=call)
    emulator.hangup(call)
    runs = runs_of(api, call, 5)
    assert actions(runs) == [
        ("call.answered", "stream_started"),
        ("call.hangup", "no job"),
        ("call.initiated", "no job"),
        ("streaming.started", "no job"),
        ("streaming.stopped", "no job"),
    ]
    assert processes(runs) == 1
    answered = event_of(emulator, call, "call.answered")["data"]["id"]
    assert [b["command_id"] for b in commands(emulator, call, "streaming_start")] == [answered]
    assert commands(emulator, call, "answer") == []  # the callee answered it
    assert emulator.call(call).streams_started == 1


def test_a_call_hung_up_while_ringing_streams_nothing_and_fails_nothing(deployed):
    api, emulator, _ = deployed
    call = emulator.ring(webhook_url=webhook_url(api))
    emulator.hangup(call)  # the caller gives up before the flow's job has even started
    runs = runs_of(api, call, 2)
    assert actions(runs) == [("call.hangup", "no job"), ("call.initiated", "none")]
    assert [o.status for k, o in sorted(runs, key=lambda r: r[0])] == ["success", "skipped"]
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


def runs_for(api: StandIn, bodies: set[str], count: int) -> list:
    """Wait for ``count`` ended runs whose raw body is one of ``bodies``; return their outcomes."""
    return [o for _, o in wait_for(lambda: [r for r in api.wait_runs(0) if r[0].get("raw_string") in bodies], count)]


def test_events_that_need_nothing_and_bodies_that_are_no_event_start_no_process(deployed):
    api, emulator, _ = deployed
    call = emulator.create_call()
    others = [
        envelope(kind, f"evt-{uuid.uuid4()}", call_control_id=call)
        for kind in ("call.bridged", "call.dtmf.received", "call.playback.ended", "call.machine.detection.ended")
    ]
    others += [envelope("message.received", f"evt-{uuid.uuid4()}"), envelope("fax.received", f"evt-{uuid.uuid4()}")]
    posted = [emulator.webhooks.signed({"data": e, "meta": {"attempt": 1}}) for e in others]
    posted += [_signed_raw(emulator, b) for b in (b'{"hello": "world"}', b'{"data": "call.initiated"}', b"{}")]
    posted += [_signed_raw(emulator, json.dumps({"data": {"event_type": "call.answered", "id": "x"}}).encode())]
    for body, headers in posted:
        assert post(api, body, headers) == 201
    outcomes = runs_for(api, {body.decode() for body, _ in posted}, len(posted))
    assert [(o.status, o.processes) for o in outcomes] == [("success", 0)] * len(posted)
    assert emulator.backend.requests == [] or not [r for r in emulator.backend.requests if call in r.path]


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
    }
    for body_, headers_, _ in cases.values():
        assert post(api, body_, headers_) == 201
    outcomes = runs_for(api, {body_.decode() for body_, _, _ in cases.values()}, len(cases))
    checks = sorted(outcome.result["extra"]["check"] for outcome in outcomes)
    assert checks == sorted(check for *_, check in cases.values())
    for outcome in outcomes:  # each could have led to a command: each reached the step, which refused it
        assert outcome.status == "failure" and outcome.result["name"] == "TelnyxWebhookError"
        assert outcome.processes == 1
        said = json.dumps(outcome.result)
        assert emulator.webhook_public_key not in said and headers["telnyx-signature-ed25519"] not in said
    forged_hangup = {**real, "data": {**real["data"], "event_type": "call.hangup", "id": "evt-j"}}
    forged_body = json.dumps(forged_hangup).encode()
    assert post(api, forged_body, {**headers, "telnyx-signature-ed25519": sign(stranger, stamp, forged_body)}) == 201
    (dropped,) = runs_for(api, {forged_body.decode()}, 1)  # it could lead to nothing: no process, no failure
    assert (dropped.status, dropped.processes) == ("success", 0)
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


# -- settings, as Windmill hands them over, each checked in a real job before anything is sent -----------
def job(deployed, event_type: str = "call.initiated", direction: str = "incoming", body_extra=None, **settings_):
    """One run of the deployed flow, its step a real job, for a fresh call's signed event (a ringing
    incoming call, or an outgoing one its callee answered), the flow's settings changed as given;
    return the run and the call's id."""
    api, emulator, _ = deployed
    call = emulator.ring(direction=direction)
    if direction == "outgoing":
        emulator.pick_up(call)
    flow = copy.deepcopy(api.workspace.flows[FLOW])
    transforms = find_module(flow, "event")["value"]["input_transforms"]
    for name, value in settings_.items():
        transforms[name] = {"type": "static", "value": value}
    data = envelope(event_type, f"evt-{uuid.uuid4()}", call_control_id=call, direction=direction)
    body, headers = emulator.webhooks.signed({"data": data, "meta": {"attempt": 1}, **(body_extra or {})})
    for header in body_extra or {}:  # a header that did not reach Windmill: the body's key fills it
        headers.pop(header.replace("_", "-"))
    return api.runner.run(flow, webhook_args(body, headers, WEBHOOK_QUERY)), call


def sent_for(deployed, call: str) -> list:
    _, emulator, _ = deployed
    return [r.path for r in emulator.backend.requests if call in r.path]


@pytest.mark.parametrize(
    ("settings_", "body_extra", "check", "says"),
    [
        ({"answer_incoming": "maybe"}, None, "settings", "the setting answer_incoming must be true or false"),
        ({"stream_outgoing": 1}, None, "settings", "stream_outgoing must be true or false, got a number"),
        ({"verify_signature": "no"}, None, "settings", "verify_signature must be true or false, got the text 'no'"),
        ({"voice_bot": "yes"}, None, "settings", "voice_bot must be true or false"),
        ({"stream_options": '{"stream_track": "both_tracks"}'}, None, "settings", "stream_options must be an object"),
        ({"stream_options": ["inbound_track"]}, None, "settings", "stream_options must be an object of stream fields"),
        ({"public_key": {"key": "abc"}}, None, "public_key", "public_key must be text, the key itself"),
        ({"public_key": 1234}, None, "public_key", "public_key must be text"),
        ({}, {"telnyx_timestamp": 1700000000}, "signature", "its telnyx-timestamp input is a number"),
        (
            {},
            {"telnyx_signature_ed25519": {"sig": "x"}},
            "signature",
            "its telnyx-signature-ed25519 input is an object",
        ),
    ],
)
def test_a_bad_setting_or_header_input_is_refused_by_name_and_nothing_is_sent(
    deployed, settings_, body_extra, check, says
):
    run, call = job(deployed, body_extra=body_extra, **settings_)
    assert run.status == "failure" and run.processes == 1
    assert run.result["name"] == "TelnyxWebhookError" and run.result["extra"]["check"] == check
    assert says in run.result["message"]
    assert sent_for(deployed, call) == []


@pytest.mark.parametrize(
    ("event_type", "direction", "settings_"),
    [
        ("call.initiated", "incoming", {}),  # the setting left as shipped
        ("call.answered", "outgoing", {}),
        ("call.initiated", "incoming", {"stream_url": "", "stream_options": {"stream_url": " " + PLACEHOLDER}}),
    ],
)
def test_the_shipped_placeholder_stream_url_is_refused_by_name_and_nothing_is_sent(
    deployed, event_type, direction, settings_
):
    """A deployment whose stream_url was left as shipped would answer every call and stream it to
    example.com: the step refuses, and the call is neither answered nor streamed."""
    _, emulator, _ = deployed
    run, call = job(deployed, event_type, direction, **{"stream_url": PLACEHOLDER, **settings_})
    assert run.status == "failure" and run.processes == 1
    assert run.result["name"] == "TelnyxWebhookError" and run.result["extra"]["check"] == "settings"
    assert run.result["message"].startswith(
        "stream_url is still the shipped placeholder: set it to your WebSocket server"
    )
    assert sent_for(deployed, call) == []  # nothing reached the emulator: no answer, no stream
    assert emulator.call(call).state == ("ringing" if direction == "incoming" else "answered")
    assert emulator.call(call).streams == []


def test_booleans_given_as_text_are_read_as_booleans(deployed):
    off, call = job(deployed, answer_incoming="False")  # a $var: setting is always text
    assert (off.status, off.result["action"]) == ("skipped", "none") and sent_for(deployed, call) == []
    on, call = job(deployed, answer_incoming=" TRUE ", voice_bot="false")
    assert (on.status, on.result["action"]) == ("success", "answered_with_stream")
    _, emulator, _ = deployed
    assert {k: v for k, v in commands(emulator, call, "answer")[0].items() if k.startswith("stream_track")} == {
        "stream_track": "both_tracks"
    }
    not_outgoing, call = job(deployed, "call.answered", "outgoing", stream_outgoing="false")
    assert not_outgoing.result["action"] == "none" and sent_for(deployed, call) == []
