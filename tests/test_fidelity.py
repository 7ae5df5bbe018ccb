"""Fidelity with the original (TypeScript on Bun) and with Telnyx's spec (issue 11): what the spec
accepts is sent, integers as integers; answers are read the way the original's fetch reads them."""

from __future__ import annotations

import json

import jsonschema
import pytest
from conftest import AUTH, REFERENCE, URL
from rawserver import answer, replying

import script

SPEC = json.loads((REFERENCE / "streaming-start.request.schema.json").read_text())
RTP = {"stream_bidirectional_mode": "rtp"}  # codec and rate are only used with rtp (a protective rule)

ENUM_CASES = [(name, value) for name, prop in SPEC["properties"].items() if "enum" in prop for value in prop["enum"]]


def sent_body(serve_fixture, body, **kwargs):
    server = serve_fixture(replying(answer(200, [("Content-Type", "application/json")], b'{"data":{"result":"ok"}}')))
    result = script.main(AUTH, "v3:fidelity", body, max_retries=0, **kwargs)
    assert result == {"data": {"result": "ok"}}
    (request,) = server.requests
    raw = request.partition(b"\r\n\r\n")[2]
    jsonschema.validate(json.loads(raw), SPEC)  # the body Telnyx receives is one its spec accepts
    return raw


@pytest.mark.parametrize(("name", "value"), ENUM_CASES, ids=[f"{n}={v}" for n, v in ENUM_CASES])
def test_every_enum_value_of_the_spec_is_sent(serve, name, value):
    body = {"stream_url": URL, name: value}
    if name.startswith("stream_bidirectional_") and name not in ("stream_bidirectional_mode",):
        body.update(RTP)
    raw = sent_body(serve, body)
    assert json.loads(raw)[name] == value
    assert json.dumps(value).encode() in raw  # 8000, not 8000.0; "PCMU", not anything else


def test_a_maximal_body_is_sent_byte_for_byte(serve):
    body = {
        "stream_url": "wss://media.example.com/stream?tenant=acme",
        "stream_track": "both_tracks",
        "stream_codec": "PCMA",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "L16",
        "stream_bidirectional_sampling_rate": 16000,
        "stream_bidirectional_target_legs": "both",
        "stream_auth_token": "t" * 4000,
        "custom_parameters": [{"name": "tenant", "value": "acme"}, {"name": "room", "value": "7"}],
        "enable_dialogflow": False,
        "dialogflow_config": {"analyze_sentiment": False, "partial_automated_agent_reply": True},
        "client_state": "eyJ0ZW5hbnQiOiAiYWNtZSJ9",
        "command_id": "891510ac-f3e4-11e8-af5b-de00688a4901",
    }
    assert set(body) == set(SPEC["properties"])
    raw = sent_body(serve, body)
    assert raw == json.dumps(body, separators=(",", ":")).encode()  # JSON.stringify's bytes


def test_an_integral_float_rate_is_sent_as_an_integer(serve):
    raw = sent_body(serve, {"stream_url": URL, **RTP, "stream_bidirectional_sampling_rate": 16000.0})
    assert b'"stream_bidirectional_sampling_rate":16000}' in raw


def test_a_websocket_scheme_in_capitals_is_accepted(serve):
    raw = sent_body(serve, {"stream_url": "WSS://Media.Example.com/Stream"})
    assert json.loads(raw)["stream_url"] == "WSS://Media.Example.com/Stream"


@pytest.mark.parametrize("pasted", ["v3:abc\n", "  v3:abc ", "\tv3:abc\r\n"])
def test_a_pasted_call_control_id_loses_its_surrounding_whitespace(serve, pasted):
    server = serve(replying(answer(200, [], b"{}")))
    script.main(AUTH, pasted, {"stream_url": URL}, max_retries=0)
    (request,) = server.requests
    assert request.startswith(b"POST /v2/calls/v3:abc/actions/streaming_start HTTP/1.1\r\n")


def test_a_utf8_bom_is_stripped_from_a_success(serve):
    serve(replying(answer(200, [("Content-Type", "application/json")], b'\xef\xbb\xbf{"data":{"result":"ok"}}')))
    assert script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0) == {"data": {"result": "ok"}}


def test_a_utf8_bom_is_stripped_from_the_error_text(serve):
    serve(replying(answer(422, [("Content-Type", "application/json")], b'\xef\xbb\xbf{"errors":[]}')))
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0)
    assert str(info.value).startswith('422 {"errors":[]}')
    assert "\ufeff" not in info.value.response_text


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_a_2xx_with_no_body_returns_none_as_the_original_does(serve, status):
    serve(replying(answer(status, [])))
    assert script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0) is None


@pytest.mark.parametrize(("body", "expected"), [(b"null", None), (b'"ok"', "ok"), (b"[1,2]", [1, 2]), (b"7", 7)])
def test_a_2xx_with_any_json_returns_it(serve, body, expected):
    serve(replying(answer(200, [("Content-Type", "application/json")], body)))
    assert script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0) == expected


def test_a_2xx_with_text_says_the_command_was_most_likely_accepted(serve):
    serve(replying(answer(200, [("Content-Type", "text/html")], b"<html>proxy page</html>")))
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL, "command_id": "c9"}, max_retries=0)
    text = str(info.value)
    assert text.startswith("200 <html>proxy page</html>")
    assert "most likely accepted" in text and "'c9'" in text


def test_10011_on_a_422_is_not_called_a_rate_limit(serve):
    errors = {"errors": [{"code": "10011", "title": "Invalid value", "source": {"pointer": "/stream_codec"}}]}
    serve(replying(answer(422, [("Content-Type", "application/json")], json.dumps(errors).encode())))
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0)
    assert "rate" not in str(info.value).lower()
    assert "stream_codec" in str(info.value)


def test_a_429_is_called_a_rate_limit_whatever_its_code(serve):
    serve(replying(answer(429, [("Retry-After", "0")], b'{"errors":[{"code":"99999"}]}')))
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0)
    assert "Rate limited" in str(info.value)


def test_form_descriptions_make_no_codec_to_rate_claim():
    rate = script.BODY_FIELDS["stream_bidirectional_sampling_rate"]["description"]
    assert "PCMU" not in rate and "OPUS" not in rate and "L16" not in rate
