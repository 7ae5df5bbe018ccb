"""Messages word for word, where a user reads them: hints on Telnyx's answers and values shown in
input errors (the oracle is the text written here, not the script's code)."""

from __future__ import annotations

import json

import pytest
from conftest import AUTH, URL
from rawserver import answer, replying, silent

import script

NOT_FOLLOWED = "; it was not followed, so the API key was not sent there. Check TELNYX_BASE_URL."


def api_error(serve, status, headers=(), body=b"") -> str:
    serve(replying(answer(status, list(headers), body)))
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0)
    return str(info.value)


@pytest.mark.parametrize(
    ("status", "location", "where"),
    [
        (302, "http://127.0.0.2:1/steal", "127.0.0.2"),
        (300, "http://[", "an unreadable address"),
        (301, None, "an unreadable address"),
        (399, "https://Example.COM/x", "example.com"),
    ],
)
def test_redirect_hints(serve, status, location, where):
    text = api_error(serve, status, [("Location", location)] if location else [])
    assert f"Telnyx answered with a redirect to {where}{NOT_FOLLOWED}" in text
    assert "most likely accepted" not in text


def test_a_3xx_is_not_called_a_2xx_and_a_299_is(serve):
    assert "most likely accepted" in api_error(serve, 299, [], b"<html>")
    assert "redirect" not in api_error(serve, 299, [], b"<html>")


def test_a_non_object_error_before_a_known_code_does_not_hide_its_hint(serve):
    body = json.dumps({"errors": ["odd", 7, {"code": "90018", "title": "Call has already ended"}]}).encode()
    assert script.HINTS["90018"] in api_error(serve, 422, [], body)


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (
            {"code": "1", "detail": "must be a boolean", "source": {"pointer": "/dialogflow_config/analyze_sentiment"}},
            "Telnyx refused body field dialogflow_config.analyze_sentiment: must be a boolean",
        ),
        (
            {"code": "1", "title": "Invalid value", "source": {"pointer": "/stream_codec"}},
            "Telnyx refused body field stream_codec: Invalid value",
        ),
    ],
)
def test_a_source_pointer_names_the_body_field(serve, error, hint):
    text = api_error(serve, 422, [], json.dumps({"errors": [error]}).encode())
    assert f"\n{hint}\n" in text


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_value_whose_repr_raises_is_named_by_its_type():
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, timeout_s=BadRepr())
    assert str(info.value) == "timeout_s must be a number of seconds above 0 and at most 600, got <a BadRepr>."


def test_long_values_are_cut_at_80_characters_and_80_are_shown_whole():
    whole = "a b" + "c" * 75  # repr: 80 characters with the quotes
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(AUTH, whole, {"stream_url": URL})
    assert f": {whole!r}. " in str(info.value)
    longer = whole + "d"
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(AUTH, longer, {"stream_url": URL})
    shown = repr(longer)[:75] + "...'"
    assert f": {shown}. " in str(info.value) and len(shown) == 79


def test_an_input_error_without_a_field_has_an_empty_one():
    assert script.TelnyxInputError("m").field == ""


SAFE_C1 = (
    "The command may have reached Telnyx: to run it again without risking a second stream, pass body.command_id = 'c1'."
)


def connection_error(**kwargs) -> script.TelnyxConnectionError:
    with pytest.raises(script.TelnyxConnectionError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL, "command_id": "c1"}, **kwargs)
    return info.value


def test_no_answer_in_time_word_for_word(serve):
    serve(silent(5))
    error = connection_error(timeout_s=0.3, deadline_s=5, max_retries=0)
    first, *rest = str(error).split("\n")
    assert first.startswith("no answer in time (timeout or deadline) after 1 attempt(s): ReadTimeoutError: ")
    assert rest == [
        f"Telnyx did not answer within timeout_s / deadline_s; raise them or check the network. {SAFE_C1}",
        "(command_id=c1, attempts=1)",
    ]
    assert (error.command_id, error.attempts) == ("c1", 1)


def test_could_not_reach_word_for_word(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", "http://127.0.0.1:9/v2")
    error = connection_error(max_retries=1)
    first, *rest = str(error).split("\n")
    assert first.startswith("could not reach Telnyx after 2 attempt(s): NewConnectionError: ")
    assert rest == [f"Check the network and TELNYX_BASE_URL. {SAFE_C1}", "(command_id=c1, attempts=2)"]


def test_no_usable_answer_word_for_word(serve):
    serve(replying(answer(200, [], b"x" * (2 << 20))))
    assert str(connection_error(max_retries=0)).split("\n") == [
        "no usable answer after 1 attempt(s): ResponseError: the answer (status 200) is larger than 1048576 bytes "
        "and was not read; check TELNYX_BASE_URL",
        f"Check TELNYX_BASE_URL. {SAFE_C1}",
        "(command_id=c1, attempts=1)",
    ]


def test_without_a_command_id_the_message_says_to_set_one(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", "http://127.0.0.1:9/v2")
    with pytest.raises(script.TelnyxConnectionError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0)
    assert str(info.value).split("\n")[1] == (
        "Check the network and TELNYX_BASE_URL. The command may have reached Telnyx; set a command_id before "
        "running it again."
    )


def status_error(serve, status, headers=(), body=b"", **kwargs) -> script.TelnyxAPIError:
    serve(replying(answer(status, list(headers), body)))
    with pytest.raises(script.TelnyxAPIError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL, "command_id": "c1"}, **kwargs)
    return info.value


def test_a_retry_after_past_the_deadline_is_said_word_for_word(serve):
    error = status_error(serve, 503, [("Retry-After", "30")], max_retries=2, deadline_s=2)
    assert error.attempts == 1
    assert (
        f"\nGave up after 1 attempt(s): deadline_s would pass before a retry (Telnyx asked to wait 30 s). {SAFE_C1}\n"
        in str(error)
    )


@pytest.mark.parametrize("status", [408, 429, 500, 501, 503, 599])
def test_server_side_failures_say_how_to_run_again_safely(serve, status):
    text = str(status_error(serve, status, max_retries=0))
    assert f"\nGave up after 1 attempt(s): {SAFE_C1}\n" in text


@pytest.mark.parametrize("status", [400, 409, 422, 499])
def test_client_errors_do_not_talk_of_giving_up(serve, status):
    assert "Gave up" not in str(status_error(serve, status, max_retries=0))


def test_the_last_line_names_command_attempts_and_request_id(serve):
    assert str(status_error(serve, 422, [("X-Request-Id", "req-9")])).endswith(
        "\n(command_id=c1, attempts=1, request_id=req-9)"
    )
    assert str(status_error(serve, 422)).endswith("\n(command_id=c1, attempts=1)")


def test_masking_keeps_the_rest_of_the_text_as_it_was(serve):
    body = json.dumps({"errors": [{"title": f"key {AUTH['apiKey']} in Zürich"}]}, ensure_ascii=False).encode()
    error = status_error(serve, 422, [("Content-Type", "application/json")], body)
    assert error.response_text == '{"errors": [{"title": "key *** in Zürich"}]}'


def test_long_details_are_cut_at_200_characters_and_objects_are_shown(serve):
    long = {"code": "1", "detail": "d" * 250, "source": {"pointer": "/stream_url"}}
    text = str(status_error(serve, 422, [], json.dumps({"errors": [long]}).encode()))
    assert f"\nTelnyx refused body field stream_url: {'d' * 197}...\n" in text
    odd = {"code": "1", "detail": {"why": 1}, "source": {"pointer": "/stream_url"}}
    text = str(status_error(serve, 422, [], json.dumps({"errors": [odd]}).encode()))
    assert "\nTelnyx refused body field stream_url: {'why': 1}\n" in text


def test_the_error_classes_defaults_and_codes():
    error = script.TelnyxAPIError("m")
    assert (error.status, error.response_text, error.errors, error.codes, error.attempts) == (0, "", [], [], 1)
    assert (error.request_id, error.command_id) == (None, None)
    error = script.TelnyxAPIError("m", errors=["x", {"code": 5}, {"title": "no code"}, {"code": "90018"}])
    assert error.codes == ["5", "90018"]
    error = script.TelnyxConnectionError("m", "c9")
    assert (error.command_id, error.attempts) == ("c9", 1)


@pytest.mark.parametrize("status", [400, 401, 422])
def test_only_3xx_get_the_redirect_hint(serve, status):
    assert "redirect" not in str(
        status_error(serve, status, [("Location", "http://127.0.0.2/x")], b"{}", max_retries=0)
    )


def test_a_long_cause_is_cut_at_300_characters(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", f"https://{'h' * 60}.{'i' * 60}.{'j' * 60}.invalid/v2")
    first = str(connection_error(max_retries=0)).split("\n")[0]
    cause = first.split(" attempt(s): ", 1)[1]
    assert len(cause) == 300 and cause.endswith("...")


SETTINGS_FIX = "Check TELNYX_BASE_URL and the HTTPS_PROXY, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE settings."


@pytest.mark.parametrize(
    ("variable", "value", "cause"),
    [
        (
            "REQUESTS_CA_BUNDLE",
            "/nonexistent/ca.pem",
            "OSError: Could not find a suitable TLS CA certificate bundle, invalid path: /nonexistent/ca.pem",
        ),
        (
            "HTTPS_PROXY",
            "http://",
            "InvalidProxyURL: Please check proxy URL. It is malformed and could be missing the host.",
        ),
    ],
)
def test_a_broken_setting_is_named_with_its_text_and_not_retried(monkeypatch, variable, value, cause):
    # requests raises these before connecting (not urllib3 errors): one attempt, the setting's own words
    monkeypatch.setenv("TELNYX_BASE_URL", "https://127.0.0.1:9/v2")
    monkeypatch.setenv(variable, value)
    error = connection_error(max_retries=2)
    assert str(error).split("\n") == [
        f"could not reach Telnyx after 1 attempt(s): {cause}",
        f"{SETTINGS_FIX} {SAFE_C1}",
        "(command_id=c1, attempts=1)",
    ]
    assert error.attempts == 1


def test_an_answer_whose_headers_do_not_parse_is_no_usable_answer_and_not_retried(serve):
    server = serve(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Broken\r\nConnection: close\r\n\r\n{}"))
    assert str(connection_error(max_retries=2)).split("\n") == [
        "no usable answer after 1 attempt(s): ResponseError: the answer has header lines that do not parse (not shown)",
        f"Check TELNYX_BASE_URL. {SAFE_C1}",
        "(command_id=c1, attempts=1)",
    ]
    assert server.connections == 1


def refused_detail(serve, detail) -> str:
    error = {"code": "1", "detail": detail, "source": {"pointer": "/stream_url"}}
    text = api_error(serve, 422, [], json.dumps({"errors": [error]}).encode())
    return text.split("\nTelnyx refused body field stream_url: ", 1)[1].split("\n")[0]


@pytest.mark.parametrize("size", [81, 200, 201])
def test_a_non_text_detail_is_shown_as_its_repr_up_to_200_characters(serve, size):
    detail = ["x" * (size - 4)]  # repr: ['xx...x'], size characters
    assert len(repr(detail)) == size
    text = refused_detail(serve, detail)
    assert text == (repr(detail) if size <= 200 else repr(detail)[:195] + "...'")  # a cut repr ends ...'
