"""Telnyx's errors: the original's "<status> <text>" first, then what to do, as attributes too."""

from __future__ import annotations

import json
import pickle

import pytest
from conftest import AUTH, KEY, URL, start

import script


def failure(call_id="c", **kwargs):
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main(AUTH, call_id, {"stream_url": URL, "command_id": "cmd-9"}, **kwargs)
    return info.value


def answer(api, status, body, headers=None):
    text = body if isinstance(body, str) else json.dumps(body)
    api.expect_request("/v2/calls/c/actions/streaming_start").respond_with_data(
        text, status=status, content_type="application/json", headers=headers or {}
    )
    return text


def test_wrong_key_against_the_emulator_is_401_10009(emulator):
    call = emulator.create_call()
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main({"apiKey": "KEYwrong_0123456789abcdef"}, call, {"stream_url": URL})
    error = info.value
    first, *rest = str(error).split("\n")
    assert first == f"401 {error.response_text}"
    assert error.status == 401 and error.codes == ["10009"]
    assert "telnyx resource" in rest[0]
    assert error.attempts == 1  # a 4xx is never retried
    assert len(emulator.backend.requests) == 1
    assert error.request_id  # the emulator sends x-request-id, as Telnyx does


def test_ended_call_is_422_90018_and_not_retried(emulator):
    call = emulator.create_call()
    emulator.backend.hangup(call)
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call)
    error = info.value
    assert error.status == 422 and error.codes == ["90018"]
    assert str(error).startswith(f"422 {error.response_text}\n")
    assert "already ended" in str(error) and "do not retry" in str(error)
    assert len(emulator.backend.requests) == 1


def test_unknown_call_is_90015(emulator):
    with pytest.raises(script.TelnyxAPIError) as info:
        start("v3:nope")
    assert info.value.codes == ["90015"] and "call_control_id" in str(info.value).split("\n")[1]


HINT_90045 = (
    "A stream is already running on this call (Telnyx: media streaming is used), so a second streaming_start was "
    "refused. Nothing changed: the running stream goes on. To start it again with other settings, stop it first "
    "(streaming_stop), then start; to make a repeat harmless, pass the first start's command_id (e.g. the "
    "webhook's data.id), which Telnyx drops as a duplicate."
)


def test_a_second_start_on_a_streaming_call_is_90045_unless_its_command_id_repeats(emulator):
    call = emulator.create_call()
    start(call, {"stream_url": URL, "command_id": "evt-1"})
    assert start(call, {"stream_url": URL, "command_id": "evt-1"}) == {"data": {"result": "ok"}}  # a repeat
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call, {"stream_url": URL})  # a re-run without the same command_id: a new generated one
    error = info.value
    assert (error.status, error.codes, error.attempts) == (422, ["90045"], 1)
    assert str(error).split("\n")[1] == HINT_90045
    assert emulator.backend.call(call).streams_started == 1
    emulator.backend.streaming_stop(call, {})  # once stopped, a new start is accepted
    start(call, {"stream_url": URL, "command_id": "evt-2"})
    assert emulator.backend.call(call).streams_started == 2


def test_unanswered_call_is_90034(emulator):
    call = emulator.create_call(state="ringing")
    with pytest.raises(script.TelnyxAPIError) as info:
        start(call)
    assert info.value.codes == ["90034"] and "call.answered" in str(info.value)


def test_invalid_body_422_names_the_field_from_source_pointer(api):
    text = answer(
        api,
        422,
        {
            "errors": [
                {"code": "10015", "title": "Invalid", "detail": "bad codec", "source": {"pointer": "/stream_codec"}}
            ]
        },
    )
    error = failure()
    assert str(error).split("\n")[:2] == [f"422 {text}", "Telnyx refused body field stream_codec: bad codec"]
    assert error.errors[0]["source"]["pointer"] == "/stream_codec"


def test_404_without_errors_list(api):
    answer(api, 404, "Not Found")
    error = failure()
    assert str(error).startswith("404 Not Found\n")
    assert error.errors == [] and error.codes == []
    assert "call_control_id" in str(error)


def test_429_is_retried_then_explained(api):
    text = answer(api, 429, {"errors": [{"code": 10011, "title": "Too many requests"}]}, {"Retry-After": "0"})
    error = failure()
    assert str(error).startswith(f"429 {text}\n")
    assert error.codes == ["10011"]  # numbers are accepted too, as strings
    assert error.attempts == 3 and len(api.log) == 3
    assert "Rate limited" in str(error) and "3 attempt(s)" in str(error)


def test_500_after_retries_says_how_many_attempts(api):
    text = answer(api, 500, {"errors": [{"code": "10007", "title": "Unexpected error"}]})
    error = failure(max_retries=1)
    assert str(error).startswith(f"500 {text}\n")
    assert error.attempts == 2 and len(api.log) == 2
    assert "command_id=cmd-9, attempts=2" in str(error)


def test_request_id_is_kept(api):
    answer(api, 403, {"errors": []}, {"x-request-id": "req-123"})
    error = failure()
    assert error.request_id == "req-123" and "request_id=req-123" in str(error)


def test_2xx_that_is_not_json_is_an_error(api):
    answer(api, 200, "<html>proxy login</html>")
    error = failure()
    assert str(error).startswith("200 <html>proxy login</html>\n")
    assert "TELNYX_BASE_URL" in str(error)


def test_errors_pickle_and_keep_their_attributes(api):
    answer(api, 422, {"errors": [{"code": "90018", "title": "Call has already ended"}]}, {"x-request-id": "r1"})
    error = failure()
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is script.TelnyxAPIError and str(copy) == str(error)
    for name in ("status", "errors", "codes", "request_id", "response_text", "command_id", "attempts"):
        assert getattr(copy, name) == getattr(error, name)


@pytest.mark.parametrize(
    "error",
    [
        script.TelnyxInputError("body.x is bad", "body.x"),
        script.TelnyxConnectionError("no answer", "cmd", 3),
        script.TelnyxAPIError(
            "500 x", status=500, response_text="x", errors=[{"code": "1"}], request_id="r", command_id="c", attempts=2
        ),
    ],
)
def test_every_error_pickles(error):
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.__dict__ == error.__dict__


def test_a_key_echoed_by_a_server_is_masked(api):
    answer(api, 401, {"errors": [{"code": "10009", "detail": f"bad key {KEY}"}]})
    error = failure()
    assert KEY not in str(error) and KEY not in error.response_text and "***" in str(error)
