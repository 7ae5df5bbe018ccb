"""Checks before sending: each bad input is a ValueError naming the field and the fix, and no request."""

from __future__ import annotations

import pytest
from conftest import AUTH, KEY, URL, internals

import script


def refused(api, call_id="v3:ok", body=None, auth=AUTH, **kwargs):
    """main() must raise TelnyxInputError and send nothing; returns the error."""
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(auth, call_id, {"stream_url": URL} if body is None else body, **kwargs)
    assert api.log == [], "a request was sent for bad input"
    error = info.value
    assert isinstance(error, ValueError)
    assert KEY not in str(error) and KEY not in repr(error)
    return error


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        (None, "auth"),
        ("KEY123", "auth"),
        ([KEY], "auth"),
        ({}, "auth.apiKey"),
        ({"apiKey": ""}, "auth.apiKey"),
        ({"apiKey": "   "}, "auth.apiKey"),
        ({"apiKey": 123}, "auth.apiKey"),
        ({"api_key": KEY}, "auth.apiKey"),
        ({"apiKey": KEY + " extra"}, "auth.apiKey"),
        ({"apiKey": KEY + "\nX-Injected: 1"}, "auth.apiKey"),
        ({"apiKey": KEY + "é"}, "auth.apiKey"),
        ({"apiKey": KEY + '"'}, "auth.apiKey"),
        ({"apiKey": "KEY0123456789ab"}, "auth.apiKey"),  # 15 characters: too short to mask safely
    ],
)
def test_auth(api, auth, field):
    error = refused(api, auth=auth)
    assert error.field == field
    assert "telnyx resource" in str(error)


def test_auth_key_whitespace_from_a_paste_is_stripped(api):
    api.expect_oneshot_request("/v2/calls/c/actions/streaming_start").respond_with_json({"data": {"result": "ok"}})
    script.main({"apiKey": f"  {KEY}\n"}, "c", {"stream_url": URL})
    ((request, _),) = api.log
    assert request.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("call_id", ["", None, 123, "a b", "a\nb", "a\tb", "a\x00b", "\u200b", ".", "..", "x" * 513])
def test_call_control_id(api, call_id):
    error = refused(api, call_id=call_id)
    assert error.field == "call_control_id"
    assert "call.answered" in str(error)


@pytest.mark.parametrize("body", [[], "stream_url=wss://x", 5, True])
def test_body_must_be_an_object(api, body):
    error = refused(api, body=body)
    assert error.field == "body"
    assert "must be an object" in str(error)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("stream_trak", "stream_track"),
        ("streamUrl", "stream_url"),
        ("stream_codecs", "stream_codec"),
        ("clientstate", "client_state"),
        ("commandId", "command_id"),
        ("bidirectional_mode", "stream_bidirectional_mode"),
    ],
)
def test_unknown_key_suggests_the_right_one(api, key, suggestion):
    error = refused(api, body={"stream_url": URL, key: "x"})
    assert error.field == f"body.{key}"
    assert f"did you mean '{suggestion}'" in str(error)


def test_unknown_key_without_a_close_match_lists_the_fields(api):
    error = refused(api, body={"stream_url": URL, "zzz": 1})
    assert "check the spelling" in str(error) and "stream_bidirectional_target_legs" in str(error)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("stream_track", "inbound", '"inbound_track", "outbound_track", "both_tracks"'),
        ("stream_codec", "pcmu", '"PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16", "default"'),
        ("stream_bidirectional_mode", "RTP", '"mp3", "rtp"'),
        ("stream_bidirectional_target_legs", "all", '"both", "self", "opposite"'),
    ],
)
def test_enums_list_what_is_allowed(api, field, value, allowed):
    error = refused(api, body={"stream_url": URL, field: value})
    assert error.field == f"body.{field}"
    assert allowed in str(error) and repr(value) in str(error)


@pytest.mark.parametrize("codec", ["G711", "pcmu", "Opus", "default"])
def test_bidirectional_codec_is_case_sensitive_and_has_no_default(api, codec):
    body = {"stream_url": URL, "stream_bidirectional_mode": "rtp", "stream_bidirectional_codec": codec}
    assert refused(api, body=body).field == "body.stream_bidirectional_codec"


@pytest.mark.parametrize("rate", ["8000", 44100, 8000.5, True])
def test_sampling_rate(api, rate):
    body = {"stream_url": URL, "stream_bidirectional_mode": "rtp", "stream_bidirectional_sampling_rate": rate}
    assert refused(api, body=body).field == "body.stream_bidirectional_sampling_rate"


@pytest.mark.parametrize("mode", [None, "mp3"])
@pytest.mark.parametrize(
    ("key", "value"), [("stream_bidirectional_codec", "PCMU"), ("stream_bidirectional_sampling_rate", 16000)]
)
def test_bidirectional_settings_need_rtp(api, mode, key, value):
    body = {"stream_url": URL, key: value, "stream_bidirectional_mode": mode}
    error = refused(api, body=body)
    assert error.field == f"body.{key}"
    assert "set stream_bidirectional_mode to 'rtp'" in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "https://example.com/x",
        "javascript:alert(1)",
        "wss://",
        "wss:///path",
        "ws://user:pw@example.com/",
        "wss://user@example.com/",  # a user alone, or a password alone: either is a credential in the URL
        "wss://:pw@example.com/",
        "wss://example.com:99999/",
        "wss://[::1/",
        "example.com/stream",
        "wss://exa mple.com/",
        "wss://example.com/a\x00b",
        "wss://example.com/\x7f",
        "wss://example.com/a\u2028",
        5,
    ],
)
def test_stream_url(api, url):
    error = refused(api, body={"stream_url": url})
    assert error.field == "body.stream_url"


@pytest.mark.parametrize("url", ["wss://example.com", "ws://127.0.0.1:8765", "wss://h.example.com:8443/a?b=c#d"])
def test_good_stream_urls_pass(url):
    assert script.check_body({"stream_url": url})["stream_url"] == url


@pytest.mark.parametrize("state", ["hello world", "abc", "a===", "{}", "é"])
def test_client_state_must_be_base64(api, state):
    error = refused(api, body={"stream_url": URL, "client_state": state})
    assert error.field == "body.client_state"
    assert "base64" in str(error)


def test_client_state_error_shows_the_encoded_value():
    with pytest.raises(ValueError, match="aGVsbG8gd29ybGQ="):
        script.check_body({"stream_url": URL, "client_state": "hello world"})


def test_stream_auth_token_too_long_is_refused_without_echoing_it(api):
    token = "T0KEN" * 801
    error = refused(api, body={"stream_url": URL, "stream_auth_token": token})
    assert error.field == "body.stream_auth_token"
    assert "4000" in str(error) and "T0KEN" not in str(error)


def test_stream_auth_token_wrong_type_does_not_echo(api):
    error = refused(api, body={"stream_url": URL, "stream_auth_token": ["s3cr3t-value"]})
    assert "s3cr3t-value" not in str(error)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": "a", "value": "b"}, "body.custom_parameters"),
        ([{"name": "a"}], "body.custom_parameters[0]"),
        ([{"name": "a", "value": 1}], "body.custom_parameters[0].value"),
        ([{"name": "a", "value": "b", "extra": "c"}], "body.custom_parameters[0]"),
        (["a=b"], "body.custom_parameters[0]"),
    ],
)
def test_custom_parameters(api, params, field):
    assert refused(api, body={"stream_url": URL, "custom_parameters": params}).field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enable_dialogflow": "true"}, "body.enable_dialogflow"),
        ({"dialogflow_config": {"analyze_sentiment": "yes"}}, "body.dialogflow_config.analyze_sentiment"),
        ({"dialogflow_config": {"language": "en"}}, "body.dialogflow_config"),
        ({"command_id": 7}, "body.command_id"),
        ({"command_id": "abc\x00"}, "body.command_id"),
        ({"command_id": "abc\r\nX-Injected: 1"}, "body.command_id"),
        ({"command_id": "\x1b[31m"}, "body.command_id"),
        ({"stream_track": "\ud800"}, "body.stream_track"),
        ({"custom_parameters": [{"name": "\ud800", "value": "v"}]}, "body.custom_parameters[0].name"),
    ],
)
def test_other_fields(api, body, field):
    assert refused(api, body={"stream_url": URL, **body}).field == field


def test_a_body_wrong_in_every_field_names_the_first_by_name(api):
    """Every error is looked at (the schema allows about 20 at most), so which is named does not hang on the
    validator's order: the wrong field whose name comes first."""
    fields = [name for name in script.BODY_FIELDS if name != "custom_parameters"]  # checked before the schema
    assert refused(api, body=dict.fromkeys(fields, 1.5)).field == "body.client_state"
    assert refused(api, body=dict.fromkeys(fields[:-2], 1.5)).field == "body.dialogflow_config"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": "10"}, "timeout_s"),
        ({"timeout_s": True}, "timeout_s"),
        ({"deadline_s": 601}, "deadline_s"),
        ({"deadline_s": float("nan")}, "deadline_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 11}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
    ],
)
def test_limits(api, kwargs, field):
    assert refused(api, **kwargs).field == field


@pytest.mark.parametrize(
    "base",
    [
        "http://api.telnyx.com/v2",
        "ftp://127.0.0.1/v2",
        "https://user:pw@api.telnyx.com/v2",
        "https://x.test/v2?a=1",
        "notaurl",
        "http://[::1",
    ],
)
def test_base_url_must_be_https_or_loopback(api, monkeypatch, base):
    monkeypatch.setenv("TELNYX_BASE_URL", base)
    assert refused(api).field == "TELNYX_BASE_URL"


@pytest.mark.parametrize(
    "base", ["http://localhost:1/v2", "http://127.0.0.1:1/v2", "http://[::1]:1/v2", "https://api.telnyx.com/v2"]
)
def test_base_url_allowed(monkeypatch, base):
    monkeypatch.setenv("TELNYX_BASE_URL", base)
    assert internals.base_url() == base


def test_every_message_names_field_and_fix(api):
    error = refused(api, body={"stream_url": URL, "stream_track": "both"})
    assert str(error).startswith("body.stream_track is invalid, got 'both': use one of ")


FIELDS = ", ".join(script.BODY_FIELDS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"enable_dialogflow": "true"},
            "body.enable_dialogflow is invalid, got 'true': use a JSON boolean (true or false).",
        ),
        ({"command_id": 7}, "body.command_id is invalid, got 7: use a JSON string."),
        ({"custom_parameters": "a=b"}, "body.custom_parameters is invalid, got 'a=b': use a JSON array."),
        (
            {"stream_track": "both"},
            'body.stream_track is invalid, got \'both\': use one of "inbound_track", "outbound_track", "both_tracks".',
        ),
        (
            {"stream_track": 5},
            'body.stream_track is invalid, got 5: use one of "inbound_track", "outbound_track", "both_tracks".',
        ),
        (
            {"stream_auth_token": "t" * 4001},
            "body.stream_auth_token is invalid: shorten it to at most 4000 characters (it has 4001).",
        ),
        ({"stream_auth_token": 12}, "body.stream_auth_token is invalid: use a JSON string."),
        (
            {"custom_parameters": [{"name": "a"}]},
            "body.custom_parameters[0] has an empty value: fill in both name and value, or remove the item (an item "
            "with both empty is ignored).",
        ),
        (
            {"custom_parameters": [{"name": "a", "value": 7}]},
            "body.custom_parameters[0].value is invalid, got 7: use a JSON string.",
        ),
        (
            {"dialogflow_config": {"language": "en", "analyze_sentiment": True}},
            "body.dialogflow_config is invalid: remove 'language'; "
            "allowed: analyze_sentiment, partial_automated_agent_reply.",
        ),
        (
            {"custom_parameters": [{"name": "a", "value": "b", "x": "1", "y": "2"}]},
            "body.custom_parameters[0] is invalid: remove 'x', 'y'; allowed: name, value.",
        ),
        (
            {"stream_url": "http://x"},
            "body.stream_url is invalid, got 'http://x': must be a ws:// or wss:// URL with a host.",
        ),
        (
            {"stream_trak": "x"},
            "body has an unknown field 'stream_trak': did you mean 'stream_track'? "
            f"Fields streaming_start accepts: {FIELDS}.",
        ),
        ({"zzz": 1}, f"body has an unknown field 'zzz': check the spelling. Fields streaming_start accepts: {FIELDS}."),
    ],
)
def test_each_kind_of_refusal_says_exactly_what_to_fix(api, body, message):
    """The messages, word for word: what a user reads in the Windmill job's error."""
    error = refused(api, body=body)
    assert str(error) == message
    assert error.field == message.split(" ")[0] if " is invalid" in message else error.field.startswith("body.")
