"""Hostile input, fuzzed with hypothesis: a ValueError naming the field, or a correct request. Never
an unhandled exception, never a request with a changed path, never the key in a message."""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest
from conftest import KEY, REFERENCE, URL
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import script
from emulator import Emulator

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PREFIX = "/v2/calls/"
SUFFIX = "/actions/streaming_start"


@pytest.fixture(scope="module", autouse=True)
def server():
    """One emulator for the module (hypothesis runs each test hundreds of times)."""
    with Emulator(api_key=KEY, media=False) as emu:
        old = os.environ.get("TELNYX_BASE_URL")
        os.environ["TELNYX_BASE_URL"] = emu.base_url
        global EMU
        EMU = emu
        yield emu
        if old is None:
            del os.environ["TELNYX_BASE_URL"]
        else:
            os.environ["TELNYX_BASE_URL"] = old


EMU: Emulator
SPEC = json.loads((REFERENCE / "streaming-start.request.schema.json").read_text())
SPEC_ENUMS = {name: prop["enum"] for name, prop in SPEC["properties"].items() if "enum" in prop}


def attempt(auth: Any, call_id: Any, body: Any) -> tuple[Any, list]:
    """Run main; return (outcome, requests the emulator received for it)."""
    before = len(EMU.backend.requests)
    try:
        outcome: Any = script.main(auth, call_id, body, max_retries=0)
    except script.TelnyxInputError as error:
        outcome = error
    except script.TelnyxAPIError as error:  # the emulator refused it: a correct request, a clear answer
        outcome = error
    except RecursionError:  # pragma: no cover - a crash the property must report, not hide
        raise
    received = EMU.backend.requests[before:]
    event(f"outcome: {type(outcome).__name__}")
    text = str(outcome) + repr(outcome)
    assert KEY not in text
    if isinstance(outcome, script.TelnyxInputError):
        assert received == [], "bad input was sent"
        assert outcome.field, "the error does not name the field"
    else:
        assert len(received) == 1
    return outcome, received


hostile_ids = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("./?#%&=:;@+ \\\t\n\r\x00abc")), max_size=40),
    st.builds(lambda a, b: a + "/../" + b, st.text(max_size=10), st.text(max_size=10)),
    st.sampled_from(["..", ".", "../x", "a/b", "a?b", "a#b", "%2F", "%00", "v3:abc", "x" * 5000]),
    st.integers(),
    st.none(),
    st.binary(max_size=20),
    st.lists(st.text(max_size=3), max_size=3),
)


@FUZZ
@given(call_id=hostile_ids)
def test_call_control_id_never_changes_the_path(call_id):
    outcome, received = attempt({"apiKey": KEY}, call_id, {"stream_url": URL})
    if isinstance(outcome, script.TelnyxInputError):
        assert outcome.field == "call_control_id"
        return
    (request,) = received
    assert request.path.startswith(PREFIX) and request.path.endswith(SUFFIX)
    segment = request.path[len(PREFIX) : -len(SUFFIX)]
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert unquote(segment) == call_id.strip()  # the id, less the whitespace a paste leaves, as the original


class Odd:
    """An object JSON cannot carry, whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**4400, max_value=10**4400 + 5),  # str() of it raises in Python >= 3.11
    st.floats(allow_nan=True),
    st.text(),
    st.builds(Odd),
    st.binary(max_size=4),
    st.sampled_from(
        ["http://x", "javascript:alert(1)", "ws://127.0.0.1:1", "wss://ok.example/a", "PCMU", "rtp", "both_tracks", ""]
    ),
)
json_like = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.none()), inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


field_names = st.sampled_from(list(script.BODY_FIELDS))
bodies = st.one_of(
    st.dictionaries(field_names, json_like, max_size=6),
    st.dictionaries(st.one_of(field_names, st.text(max_size=20), st.integers()), json_like, max_size=6),
    json_like,
    st.builds(lambda extra: {"stream_url": URL, **extra}, st.dictionaries(field_names, json_like, max_size=4)),
    st.builds(lambda f, d: {f: nested(d)}, field_names, st.integers(min_value=1, max_value=5000)),
)


@FUZZ
@given(body=bodies)
def test_hostile_body_is_refused_by_field_or_sent_valid(body):
    outcome, received = attempt({"apiKey": KEY}, "v3:fuzz", body)
    if isinstance(outcome, script.TelnyxInputError):
        assert outcome.field == "body" or outcome.field.startswith("body.") or outcome.field.startswith("body[")
        return
    sent = json.loads(received[0].body)
    jsonschema.validate(sent, SPEC)  # whatever goes out is a body Telnyx's spec accepts
    assert set(sent) <= set(script.BODY_FIELDS)


# Valid bodies built field by field, with what must be sent: the oracle is the construction, not
# the script. Noise the script must drop: None anywhere, and the blanks Windmill's run form sends
# for untouched fields ("" and [] and {} at the top level).
valid_values = {
    "stream_url": st.sampled_from([URL, "ws://127.0.0.1:8765", "WSS://Media.Example.com/a?b=c"]),
    "stream_track": st.sampled_from(SPEC_ENUMS["stream_track"]),
    "stream_codec": st.sampled_from(SPEC_ENUMS["stream_codec"]),
    "stream_bidirectional_target_legs": st.sampled_from(SPEC_ENUMS["stream_bidirectional_target_legs"]),
    "stream_auth_token": st.text(st.characters(codec="utf-8"), min_size=1, max_size=50),
    "enable_dialogflow": st.booleans(),
    "client_state": st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode()),
    "command_id": st.text(st.characters(codec="utf-8", categories=["L", "N", "P"]), min_size=1, max_size=40),
}
param = st.fixed_dictionaries({"name": st.text(min_size=1, max_size=5), "value": st.text(min_size=1, max_size=5)})
BLANK_PARAMS = [{"name": "", "value": ""}, {"name": None, "value": ""}, {}]  # a blank "+ Add item": dropped


@st.composite
def bodies_with_expected(draw: Any) -> tuple[dict, dict]:
    body: dict = {}
    expected: dict = {}
    for name in draw(st.lists(st.sampled_from(list(valid_values)), unique=True)):
        body[name] = expected[name] = draw(valid_values[name])
    if "stream_url" not in body and body.get("enable_dialogflow") is not True:  # else refused: it streams nothing
        body["stream_url"] = expected["stream_url"] = draw(valid_values["stream_url"])
    if draw(st.booleans()):  # bidirectional rtp, with its codec and rate (the rate as an integral float too)
        rate = draw(st.sampled_from(SPEC_ENUMS["stream_bidirectional_sampling_rate"]))
        codec = draw(st.sampled_from(SPEC_ENUMS["stream_bidirectional_codec"]))
        expected.update(stream_bidirectional_mode="rtp", stream_bidirectional_codec=codec)
        expected["stream_bidirectional_sampling_rate"] = rate
        body.update(stream_bidirectional_mode="rtp", stream_bidirectional_codec=codec)
        body["stream_bidirectional_sampling_rate"] = draw(st.sampled_from([rate, float(rate)]))
    params = draw(st.lists(param, max_size=3))
    if params:
        expected["custom_parameters"] = [dict(p) for p in params]
        noisy: list = [dict(p) for p in params]
        for _ in range(draw(st.integers(0, 2))):
            noisy.insert(draw(st.integers(0, len(noisy))), draw(st.sampled_from([None, *BLANK_PARAMS])))
        body["custom_parameters"] = draw(st.sampled_from([noisy, tuple(noisy)]))
    flags = draw(
        st.dictionaries(st.sampled_from(["analyze_sentiment", "partial_automated_agent_reply"]), st.booleans())
    )
    if flags:
        expected["dialogflow_config"] = dict(flags)
        body["dialogflow_config"] = {**flags, "analyze_sentiment": flags.get("analyze_sentiment")}
    for name in script.BODY_FIELDS:  # untouched fields, as a form, a flow or a Python caller leaves them
        if name not in body:
            blank = draw(st.sampled_from([None, "", [], {}, "absent"]))
            if blank != "absent":
                body[name] = blank
    return body, expected


@FUZZ
@given(case=bodies_with_expected())
def test_valid_body_is_sent_as_built_without_noise(case):
    body, expected = case
    outcome, received = attempt({"apiKey": KEY}, "v3:fuzz", body)
    assert not isinstance(outcome, script.TelnyxInputError), outcome
    sent = json.loads(received[0].body)
    assert sent == expected
    if "stream_bidirectional_sampling_rate" in sent:  # an integer on the wire, as JSON.stringify sends 16000.0
        assert b'_rate":%d' % expected["stream_bidirectional_sampling_rate"] in received[0].body
    jsonschema.validate(sent, SPEC)


@FUZZ
@given(
    url=st.one_of(
        st.text(),
        st.builds(
            lambda s, r: s + r,
            st.sampled_from(["ws://", "wss://", "http://", "https://", "javascript:", "ws:", "WSS://", "ws:///"]),
            st.text(max_size=30),
        ),
    )
)
def test_stream_url_is_a_websocket_url_or_refused(url):
    outcome, received = attempt({"apiKey": KEY}, "v3:fuzz", {"stream_url": url})
    plain = re.fullmatch(r"(?i)wss?://[a-z0-9.-]*[a-z0-9](:[0-9]{1,4})?(/[!-~]*)?", url)
    if isinstance(outcome, script.TelnyxInputError):
        assert outcome.field == "body.stream_url"
        assert not plain, "a plain ws:// URL was refused"
    elif url == "":
        assert json.loads(received[0].body) == {}  # a blank form value: not set, not sent
    else:
        assert url.lower().startswith(("ws://", "wss://")) and url.isprintable()
        assert json.loads(received[0].body)["stream_url"] == url


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@FUZZ
@given(
    state=st.one_of(
        st.binary(min_size=1).map(lambda b: ("ok", base64.b64encode(b).decode())),
        st.builds(  # a character base64 never has
            lambda a, c, b: ("bad", a + c + b),
            st.text(alphabet=B64, max_size=8),
            st.sampled_from(list(" !#$%&*-_.:;?@é\n\x00")),
            st.text(alphabet=B64, max_size=8),
        ),
        st.text(alphabet=B64, min_size=1, max_size=40).filter(lambda t: len(t) % 4).map(lambda t: ("bad", t)),
    )
)
def test_client_state_is_sent_only_when_base64(state):
    kind, text = state
    outcome, received = attempt({"apiKey": KEY}, "v3:fuzz", {"stream_url": URL, "client_state": text})
    if kind == "bad":
        assert isinstance(outcome, script.TelnyxInputError) and outcome.field == "body.client_state"
    else:
        assert json.loads(received[0].body)["client_state"] == text


@FUZZ
@given(
    auth=st.one_of(
        json_like,
        st.builds(lambda k: {"apiKey": k}, st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1)),
        st.dictionaries(st.sampled_from(["apiKey", "api_key", "key"]), json_like, max_size=2),
        st.builds(lambda k: {"apiKey": k}, st.text()),
    )
)
def test_auth_is_refused_or_sent_as_a_bearer_header(auth):
    outcome, received = attempt(auth, "v3:fuzz", {"stream_url": URL})
    if isinstance(outcome, script.TelnyxInputError):
        assert outcome.field in ("auth", "auth.apiKey")
        key = auth.get("apiKey") if isinstance(auth, dict) else None
        if isinstance(key, str) and len(key.strip()) > 3:
            assert key.strip() not in str(outcome)  # a wrong key is not echoed either
    else:
        assert received[0].headers["Authorization"] == "Bearer " + auth["apiKey"].strip()


# -- no refusal ever shows a credential, however the URL around it is shaped -------------------------
# a password no message could hold by chance ("webhooks" is in the client_state advice): a digit and a
# letter around what hypothesis draws
secret = st.text(st.characters(categories=["L", "N"]), min_size=6, max_size=18).map(lambda t: f"7{t}Q")


@FUZZ
@given(
    scheme=st.sampled_from(["wss://", "ws://", "WSS://", "http://", "https://", "ftp://", "", "//", "ws:/", "wss:///"]),
    user=st.text(st.characters(categories=["L", "N"]), max_size=8),
    password=secret,
    host=st.sampled_from(["media.example.com", "", "[::1]", "h st", "x:99999", "a\tb"]),
    tail=st.sampled_from(["", "/media", "/m?x=1", "#frag", " trailing", "/\u2028"]),
    field=st.sampled_from(["stream_url", "client_state", "command_id"]),
)
def test_a_credential_in_a_url_is_never_shown(scheme, user, password, host, tail, field):
    url = f"{scheme}{user}:{password}@{host}{tail}"
    body = {"stream_url": URL, field: url}
    try:
        script.check_body(body)
    except script.TelnyxInputError as error:
        shown = str(error) + repr(error.__dict__)
        assert password not in shown, shown
