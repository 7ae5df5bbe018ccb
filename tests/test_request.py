"""The request on the wire: what the original script sends, byte for byte, and nothing else."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from conftest import AUTH, KEY, URL, internals, sent_bodies, start
from werkzeug import Response

import script

OK = {"data": {"result": "ok"}}


def test_exact_request_line_headers_and_body(api):
    api.expect_oneshot_request("/v2/calls/v3:abc-_9/actions/streaming_start", method="POST").respond_with_json(OK)
    body = {"stream_url": URL, "stream_track": "both_tracks", "command_id": "cmd-1"}
    result = script.main(AUTH, "v3:abc-_9", body)
    assert result == OK
    assert result.command_id == "cmd-1"
    ((request, _),) = api.log
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    # JSON.stringify's bytes: no spaces, keys in the caller's order
    assert (
        request.get_data()
        == b'{"stream_url":"wss://media.example.com/stream","stream_track":"both_tracks","command_id":"cmd-1"}'
    )


def test_non_ascii_is_sent_as_utf8_like_json_stringify(api):
    api.expect_oneshot_request("/v2/calls/c1/actions/streaming_start").respond_with_json(OK)
    body = {"stream_url": URL, "custom_parameters": [{"name": "ville", "value": "Zürich 🎧"}], "command_id": "x"}
    script.main(AUTH, "c1", body)
    ((request, _),) = api.log
    assert request.get_data() == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def test_none_is_dropped_at_every_depth(emulator):
    call = emulator.create_call()
    body = {
        "stream_url": URL,
        "stream_track": None,
        "client_state": None,
        "dialogflow_config": {"analyze_sentiment": True, "partial_automated_agent_reply": None},
        "custom_parameters": [{"name": "a", "value": "1"}, None],
        "command_id": "keep-me",
    }
    start(call, body)
    assert sent_bodies(emulator) == [
        {
            "stream_url": URL,
            "dialogflow_config": {"analyze_sentiment": True},
            "custom_parameters": [{"name": "a", "value": "1"}],
            "command_id": "keep-me",
        }
    ]


def test_caller_body_is_not_modified(emulator):
    body = {"stream_url": URL, "stream_track": None}
    start(emulator.create_call(), body)
    assert body == {"stream_url": URL, "stream_track": None}


BLANK_FORM = {"enable_dialogflow": False, "dialogflow_config": {"analyze_sentiment": False}}


@pytest.mark.parametrize("body", [None, {}, BLANK_FORM, {"stream_url": None, "stream_track": "both_tracks"}])
@pytest.mark.parametrize("retries", [0, 2])
def test_a_body_that_can_stream_nothing_is_refused_and_nothing_is_sent(api, body, retries):
    """The original sends `{}` and Telnyx answers ok: a stream that never starts, in silence. Refused."""
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(AUTH, "c1", body, max_retries=retries)
    assert info.value.field == "body.stream_url" and "stream nothing" in str(info.value)
    assert api.log == []


def test_blank_custom_parameters_are_not_sent(api):
    api.expect_oneshot_request("/v2/calls/c1/actions/streaming_start").respond_with_json(OK)
    body = {
        "stream_url": URL,
        "custom_parameters": [{"name": "", "value": ""}, {"name": "tenant", "value": "acme"}, {"name": None}, {}],
    }
    script.main(AUTH, "c1", body, max_retries=0)
    ((request, _),) = api.log
    assert json.loads(request.get_data())["custom_parameters"] == [{"name": "tenant", "value": "acme"}]


def test_only_blank_custom_parameters_send_none(api):
    api.expect_oneshot_request("/v2/calls/c1/actions/streaming_start").respond_with_json(OK)
    script.main(AUTH, "c1", {"stream_url": URL, "custom_parameters": [{"name": "", "value": ""}]}, max_retries=0)
    ((request, _),) = api.log
    assert request.get_data() == json.dumps({"stream_url": URL}, separators=(",", ":")).encode()


def test_dialogflow_only_body(emulator):
    call = emulator.create_call()
    start(call, {"enable_dialogflow": True, "command_id": "d1"})
    assert sent_bodies(emulator) == [{"enable_dialogflow": True, "command_id": "d1"}]


def test_a_command_id_is_generated_once_and_kept(emulator):
    call = emulator.create_call()
    result = start(call)
    (sent,) = sent_bodies(emulator)
    assert uuid.UUID(sent["command_id"]).version == 4
    assert result.command_id == sent["command_id"]
    assert result == OK and json.loads(json.dumps(result)) == OK  # JSON-serialisable, unchanged


def test_callers_command_id_is_never_changed(emulator):
    call = emulator.create_call()
    start(call, {"stream_url": URL, "command_id": "from-webhook-event-42"})
    assert sent_bodies(emulator)[0]["command_id"] == "from-webhook-event-42"


@pytest.mark.parametrize(
    ("call_id", "segment"),
    [
        ("v3:abc", "v3:abc"),
        ("../x", "..%2Fx"),
        ("a/b", "a%2Fb"),
        ("a?b=1", "a%3Fb%3D1"),
        ("a#frag", "a%23frag"),
        ("50%", "50%25"),
        ("é", "%C3%A9"),
        ("..%2F..", "..%252F.."),
    ],
)
def test_call_control_id_is_one_encoded_path_segment(api, call_id, segment):
    api.expect_oneshot_request(re.compile(".*")).respond_with_json(OK)  # match any path: check it below
    script.main(AUTH, call_id, {"stream_url": URL})
    ((request, _),) = api.log
    assert request.environ["REQUEST_URI"] == f"/v2/calls/{segment}/actions/streaming_start"
    assert request.query_string == b""


def test_emulator_sees_the_decoded_id(emulator):
    call = emulator.create_call()
    start(call)
    assert emulator.call(call).streams_started == 1
    assert emulator.backend.requests[0].path == f"/v2/calls/{call}/actions/streaming_start"


def test_answer_is_returned_unchanged(api):
    answer = {"data": {"result": "ok", "extra": [1, 2, {"x": None}]}, "meta": {"v": 1}}
    api.expect_oneshot_request("/v2/calls/c/actions/streaming_start").respond_with_json(answer)
    assert script.main(AUTH, "c", {"stream_url": URL}) == answer


def test_base_url_trailing_slash_and_path(api, monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", api.url_for("/v2/"))
    api.expect_oneshot_request("/v2/calls/c/actions/streaming_start").respond_with_json(OK)
    assert script.main(AUTH, "c", {"stream_url": URL}) == OK


def test_default_base_url_is_telnyx(monkeypatch):
    monkeypatch.delenv("TELNYX_BASE_URL", raising=False)
    assert internals.base_url() == "https://api.telnyx.com/v2"


def test_netrc_cannot_replace_the_bearer_key(api, monkeypatch, tmp_path):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine localhost login someone password other\nmachine 127.0.0.1 login a password b\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    api.expect_oneshot_request("/v2/calls/c/actions/streaming_start").respond_with_json(OK)
    script.main(AUTH, "c", {"stream_url": URL})
    ((request, _),) = api.log
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_connections_are_reused_across_calls(emulator):
    calls = [emulator.create_call() for _ in range(5)]
    for call in calls:
        start(call)
    assert sum(c.streams_started for c in map(emulator.call, calls)) == 5
    # one keep-alive connection carried all five: the emulator saw one client port
    assert len({r.client for r in emulator.backend.requests}) == 1


def test_user_agent_names_the_script(api):
    api.expect_oneshot_request("/v2/calls/c/actions/streaming_start").respond_with_handler(
        lambda request: Response(json.dumps(OK), content_type="application/json")
    )
    script.main(AUTH, "c", {"stream_url": URL})
    ((request, _),) = api.log
    agent = request.headers["User-Agent"]
    assert re.fullmatch(r"windmill-telnyx-streaming-start/\d+\.\d+\.\d+ python-requests/\S+", agent), agent
    assert agent.split()[0].endswith("/" + script.__version__)
