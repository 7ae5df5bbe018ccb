"""Hostile input, fuzzed with hypothesis: a ValueError naming the field, or a correct request. Never
an unhandled exception, never a request with a changed path, never the key in a message."""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any
from urllib.parse import unquote

import pytest
from conftest import KEY, URL
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import script
from emulator import Emulator

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


def attempt(auth: Any, call_id: Any, body: Any) -> tuple[Any, list]:
    """Run main; return (outcome, requests the emulator received for it)."""
    before = len(EMU.backend.requests)
    try:
        outcome: Any = script.main(auth, call_id, body, max_retries=0)
    except script.TelnyxInputError as error:
        outcome = error
    except script.TelnyxAPIError as error:  # the emulator refused it: a correct request, a clear answer
        outcome = error
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
    assert unquote(segment) == call_id  # the server reads back exactly the id


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.sampled_from(
        ["http://x", "javascript:alert(1)", "ws://127.0.0.1:1", "wss://ok.example/a", "PCMU", "rtp", "both_tracks"]
    ),
)
json_like = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(list(script.BODY_FIELDS))
bodies = st.one_of(
    st.dictionaries(field_names, json_like, max_size=6),
    st.dictionaries(st.one_of(field_names, st.text(max_size=20)), json_like, max_size=6),
    json_like,
    st.builds(lambda extra: {"stream_url": URL, **extra}, st.dictionaries(field_names, json_like, max_size=4)),
)


@FUZZ
@given(body=bodies)
def test_body_is_refused_by_field_or_sent_as_given(body):
    outcome, received = attempt({"apiKey": KEY}, "v3:fuzz", body)
    if isinstance(outcome, script.TelnyxInputError):
        assert outcome.field == "body" or outcome.field.startswith("body.") or outcome.field.startswith("body[")
        return
    sent = json.loads(received[0].body)
    assert sent == script._drop_none(body or {})
    assert set(sent) <= set(script.BODY_FIELDS)


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
    if isinstance(outcome, script.TelnyxInputError):
        assert outcome.field == "body.stream_url"
    else:
        assert url.startswith(("ws://", "wss://"))
        assert json.loads(received[0].body)["stream_url"] == url


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text.encode("ascii"), validate=True)
        return True
    except (binascii.Error, UnicodeEncodeError):
        return False


@FUZZ
@given(
    state=st.one_of(
        st.text(), st.binary().map(lambda b: base64.b64encode(b).decode()), st.text(alphabet="ABCab+/=", max_size=12)
    )
)
def test_client_state_is_sent_only_when_base64(state):
    outcome, _ = attempt({"apiKey": KEY}, "v3:fuzz", {"stream_url": URL, "client_state": state})
    refused = isinstance(outcome, script.TelnyxInputError)
    assert refused == (not _is_base64(state))
    if refused:
        assert outcome.field == "body.client_state"


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
