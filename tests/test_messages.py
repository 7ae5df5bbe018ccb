"""Messages word for word, where a user reads them: hints on Telnyx's answers and values shown in
input errors (the oracle is the text written here, not the script's code)."""

from __future__ import annotations

import errno
import json
import os
import socket

import pytest
from conftest import AUTH, URL, closed_port, internals
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


RTP_MODE = {"stream_bidirectional_mode": "rtp"}
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
    assert (
        first == "no answer in time (timeout or deadline) after 1 attempt(s): the answer did not come within timeout_s"
    )
    assert rest == [
        f"Telnyx did not answer within timeout_s / deadline_s; raise them or check the network. {SAFE_C1}",
        "(command_id=c1, attempts=1)",
    ]
    assert (error.command_id, error.attempts) == ("c1", 1)


def test_the_deadline_passing_in_the_first_attempt_word_for_word(serve):
    serve(silent(5))
    error = connection_error(timeout_s=10, deadline_s=0.4, max_retries=2)
    assert str(error).split("\n") == [
        "no answer in time (timeout or deadline) after 1 attempt(s): deadline_s passed before an answer came",
        "deadline_s would pass before a retry. Telnyx did not answer within timeout_s / deadline_s; raise them or "
        f"check the network. {SAFE_C1}",
        "(command_id=c1, attempts=1)",
    ]


def test_could_not_reach_word_for_word(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:{closed_port()}/v2")
    error = connection_error(max_retries=1)
    assert str(error).split("\n") == [
        "could not reach Telnyx after 2 attempt(s): no connection (Connection refused)",
        f"Check the network and TELNYX_BASE_URL. {NOTHING_SENT}",
        "(command_id=c1, attempts=2)",
    ]


def test_an_unreachable_network_is_named_in_the_os_words_and_not_called_a_timeout(monkeypatch):
    """255.255.255.255 is refused by the kernel before a packet leaves (Linux: ENETUNREACH for TCP to a
    broadcast address): no network is touched, and the failure is not a refused connection."""
    unreachable = os.strerror(errno.ENETUNREACH)
    monkeypatch.setenv("TELNYX_BASE_URL", "https://255.255.255.255:9/v2")
    error = connection_error(max_retries=0)
    assert str(error).split("\n")[0] == f"could not reach Telnyx after 1 attempt(s): no connection ({unreachable})"
    assert NOTHING_SENT in str(error)
    monkeypatch.setenv("TELNYX_BASE_URL", "https://telnyx.test/v2")  # the proxy resolves it: no lookup here
    monkeypatch.setenv("HTTPS_PROXY", "http://255.255.255.255:9")
    error = connection_error(max_retries=0)
    assert str(error).split("\n")[0] == "could not reach Telnyx after 1 attempt(s): the proxy could not be reached"


NOTHING_SENT = "Nothing was sent to Telnyx (no byte of the request was written), so running it again is safe."


def test_a_name_that_does_not_resolve_says_nothing_was_sent(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", "https://no-such-host.invalid/v2")  # .invalid never resolves (RFC 2606)
    error = connection_error(max_retries=0)
    assert str(error).split("\n") == [
        "could not reach Telnyx after 1 attempt(s): the host name 'no-such-host.invalid' did not resolve",
        f"Check the host name in TELNYX_BASE_URL and this worker's DNS. {NOTHING_SENT}",
        "(command_id=c1, attempts=1)",
    ]


def test_nothing_sent_only_when_no_attempt_reached_the_server(serve, monkeypatch):
    """A first attempt that was written (then timed out) and a second that could not connect: the
    command may have reached Telnyx, so the safe-retry advice stays."""
    servers = []

    def close_then_stall(conn, request):
        servers[0]._listener.shutdown(socket.SHUT_RDWR)  # the retry finds nobody listening: refused
        silent(5)(conn, request)  # and this attempt, written, gets no answer

    servers.append(serve(close_then_stall))
    error = connection_error(max_retries=1, timeout_s=0.5, deadline_s=3)
    first = str(error).split("\n")[0]
    assert first == "could not reach Telnyx after 2 attempt(s): no connection (Connection refused)"
    assert servers[0].connections == 1 and len(servers[0].requests) == 1
    assert SAFE_C1 in str(error) and NOTHING_SENT not in str(error)


def test_no_usable_answer_word_for_word(serve):
    serve(replying(answer(200, [], b"x" * (2 << 20))))
    assert str(connection_error(max_retries=0)).split("\n") == [
        "no usable answer after 1 attempt(s): the answer (status 200) is larger than 1048576 bytes and was not read",
        f"Check TELNYX_BASE_URL. {SAFE_C1}",
        "(command_id=c1, attempts=1)",
    ]


def test_without_a_command_id_the_message_says_what_is_safe(serve):
    serve(silent(5))  # the request is written, then no answer: it may have started a stream
    with pytest.raises(script.TelnyxConnectionError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0, timeout_s=0.3)
    assert str(info.value).split("\n")[1] == (
        "Telnyx did not answer within timeout_s / deadline_s; raise them or check the network. The command may "
        "have reached Telnyx without a command_id, so Telnyx could not tell a repeat from it: before running it "
        "again, check whether a stream started (a streaming.started or streaming.failed webhook for this call), or "
        "stop the call's streams first (streaming_stop). Keep max_retries above 0 or pass a command_id, so that a "
        "repeat is dropped."
    )


def test_without_a_command_id_and_no_connection_it_is_safe_to_run_again(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:{closed_port()}/v2")
    with pytest.raises(script.TelnyxConnectionError) as info:
        script.main(AUTH, "v3:x", {"stream_url": URL}, max_retries=0)
    assert str(info.value).split("\n")[1] == f"Check the network and TELNYX_BASE_URL. {NOTHING_SENT}"


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


def test_a_long_host_name_is_cut_in_the_message(monkeypatch):
    monkeypatch.setenv("TELNYX_BASE_URL", f"https://{'h' * 60}.{'i' * 60}.{'j' * 60}.invalid/v2")
    first = str(connection_error(max_retries=0)).split("\n")[0]
    # the name is shown as a repr cut at 80 characters: the quote, 74 of the name, ...'
    assert (
        first == f"could not reach Telnyx after 1 attempt(s): the host name '{'h' * 60}.{'i' * 13}...' did not resolve"
    )


CA_FIX = "Check REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (unset them to use the bundled certificates) and TELNYX_BASE_URL."
PROXY_FIX = "Check HTTPS_PROXY (its address and credentials), or unset it."


@pytest.mark.parametrize(
    ("variable", "value", "cause", "fix"),
    [
        ("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem", "the CA bundle '/nonexistent/ca.pem' does not exist", CA_FIX),
        ("HTTPS_PROXY", "http://", "HTTPS_PROXY is not a proxy URL", PROXY_FIX),
    ],
)
def test_a_broken_setting_is_named_and_not_retried(monkeypatch, variable, value, cause, fix):
    # requests raises these before connecting: one attempt, the setting named, nothing sent
    monkeypatch.setenv("TELNYX_BASE_URL", "https://127.0.0.1:9/v2")
    monkeypatch.setenv(variable, value)
    error = connection_error(max_retries=2)
    assert str(error).split("\n") == [
        f"could not reach Telnyx after 1 attempt(s): {cause}",
        f"{fix} {NOTHING_SENT}",
        "(command_id=c1, attempts=1)",
    ]
    assert error.attempts == 1


def test_an_answer_whose_headers_do_not_parse_is_no_usable_answer_and_not_retried(serve):
    server = serve(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Broken\r\nConnection: close\r\n\r\n{}"))
    assert str(connection_error(max_retries=2)).split("\n") == [
        "no usable answer after 1 attempt(s): the answer has header lines that do not parse (not shown)",
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


# -- every input refusal word for word: the field, what is wrong, the fix ---------------------------
def refusal(body=None, auth=AUTH, call_id="v3:x", **kwargs) -> script.TelnyxInputError:
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(auth, call_id, {"stream_url": URL} if body is None else body, **kwargs)
    return info.value


def nested(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_is_refused_past_8_levels_and_not_before():
    # body is level 0, body.custom_parameters level 1: 7 more lists put "x" at level 8
    at_8 = refusal({"stream_url": URL, "custom_parameters": nested(7)})
    assert "nested deeper" not in str(at_8) and at_8.field.startswith("body.custom_parameters[0]")
    error = refusal({"stream_url": URL, "custom_parameters": nested(8)})
    field = "body.custom_parameters" + "[0]" * 8
    assert (str(error), error.field) == (f"{field} is nested deeper than 8 levels: no streaming_start field is.", field)


def test_nesting_counts_object_levels_too():
    error = refusal({"stream_url": URL, "custom_parameters": [{"name": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}]})
    assert error.field == "body.custom_parameters[0].name.a.b.c.d.e.f"
    assert str(error).endswith(" is nested deeper than 8 levels: no streaming_start field is.")


@pytest.mark.parametrize("value", [2**53, -(2**53)])
def test_integers_up_to_2_53_reach_the_schema(value):
    error = refusal(
        {"stream_url": URL, "stream_bidirectional_mode": "rtp", "stream_bidirectional_sampling_rate": value}
    )
    assert str(error).startswith(f"body.stream_bidirectional_sampling_rate is invalid, got {value}: use one of 8000, ")


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1])
def test_integers_past_2_53_are_refused_by_size(value):
    error = refusal({"stream_url": URL, "stream_bidirectional_sampling_rate": value})
    assert str(error) == ("body.stream_bidirectional_sampling_rate is a 54-bit integer: no field takes one that large.")
    assert error.field == "body.stream_bidirectional_sampling_rate"


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        (
            {"stream_url": "wss://x.example/\ud800"},
            "body.stream_url contains a lone surrogate character, which JSON cannot carry: remove it.",
            "body.stream_url",
        ),
        (
            {"stream_url": URL, "custom_parameters": [{1: "x"}]},
            "body.custom_parameters[0] has a key of type int: keys must be strings.",
            "body.custom_parameters[0]",
        ),
        (
            {"stream_url": b"wss://x.example"},
            "body.stream_url is a bytes, which JSON cannot carry: use a string, number, boolean, list or object.",
            "body.stream_url",
        ),
        (
            {"stream_url": "http://user:pw@x.example/"},
            "body.stream_url is invalid: must be a ws:// or wss:// URL with a host.",
            "body.stream_url",
        ),
        (
            {"stream_url": "ws://user@x.example/"},
            "body.stream_url contains a user or password (the URL is not shown, to keep it out of logs): Telnyx "
            "would repeat it in every streaming.failed webhook. Remove it from the URL and pass the secret as "
            "body.stream_auth_token, which your server receives when Telnyx connects.",
            "body.stream_url",
        ),
        (
            {"stream_url": "http://x.example/media"},
            "body.stream_url is invalid, got 'http://x.example/media': must be a ws:// or wss:// URL with a host.",
            "body.stream_url",
        ),
        (
            {},
            "body.stream_url is missing: with no stream_url and enable_dialogflow not true, Telnyx would accept the "
            "command and stream nothing, and the caller would hear silence. Set body.stream_url to your WebSocket "
            "server, e.g. wss://your-server.example.com/media (or set body.enable_dialogflow to true to stream to "
            "Dialogflow).",
            "body.stream_url",
        ),
        (
            {"stream_url": URL, "custom_parameters": [{"name": "a", "value": "1"}, {"name": "b", "value": ""}]},
            "body.custom_parameters[1] has an empty value: fill in both name and value, or remove the item (an item "
            "with both empty is ignored).",
            "body.custom_parameters[1]",
        ),
        (
            {"stream_url": URL, "custom_parameters": [{"name": None, "value": "1"}]},
            "body.custom_parameters[0] has an empty name: fill in both name and value, or remove the item (an item "
            "with both empty is ignored).",
            "body.custom_parameters[0]",
        ),
        (
            {"stream_url": URL, **RTP_MODE, "stream_bidirectional_sampling_rate": "16000"},
            "body.stream_bidirectional_sampling_rate is invalid, got '16000': it must be a number, not text: write "
            "16000 without quotes (one of 8000, 16000, 22050, 24000, 48000).",
            "body.stream_bidirectional_sampling_rate",
        ),
        (
            {"stream_url": URL, **RTP_MODE, "stream_bidirectional_sampling_rate": "fast"},
            "body.stream_bidirectional_sampling_rate is invalid, got 'fast': it must be a number, not text: write "
            "8000 without quotes (one of 8000, 16000, 22050, 24000, 48000).",
            "body.stream_bidirectional_sampling_rate",
        ),
        (
            {"stream_url": URL, "command_id": "a\tb"},
            "body.command_id contains control characters or line breaks, got 'a\\tb': use plain text, e.g. the "
            "webhook's data.id.",
            "body.command_id",
        ),
        (
            {"stream_url": URL, "client_state": "x" * 101},
            "body.client_state must be base64, as Telnyx's spec requires (what Telnyx does with other text is not "
            "verified, so it is refused here); encode it first. Decode it again from data.payload.client_state of "
            "later webhooks.",
            "body.client_state",
        ),
        (
            {"stream_url": URL, "client_state": "hi there"},
            "body.client_state must be base64, as Telnyx's spec requires (what Telnyx does with other text is not "
            "verified, so it is refused here); encode it first, e.g. 'aGkgdGhlcmU='. Decode it again from "
            "data.payload.client_state of later webhooks.",
            "body.client_state",
        ),
        (
            {"stream_url": "wss://h.example/a\x01"},
            "body.stream_url must be a ws:// or wss:// URL with a host and no control characters, got "
            "'wss://h.example/a\\x01'. Example: wss://your-server.example.com/media.",
            "body.stream_url",
        ),
        (
            {"stream_url": URL, "custom_parameters": [{"name": "", "value": "1"}]},
            "body.custom_parameters[0] has an empty name: fill in both name and value, or remove the item (an item "
            "with both empty is ignored).",
            "body.custom_parameters[0]",
        ),
        (  # text shaped like a user in a URL is never echoed, whatever the field
            {"stream_url": URL, "stream_track": "alice@example.test"},
            'body.stream_track is invalid: use one of "inbound_track", "outbound_track", "both_tracks".',
            "body.stream_track",
        ),
    ],
    ids=[
        "control character in url",
        "blank-named parameter",
        "user-like text",
        "surrogate",
        "key type",
        "bytes",
        "password in http url",
        "user in url",
        "not ws",
        "streams nothing",
        "half-blank parameter",
        "nameless parameter",
        "rate as text",
        "rate as words",
        "command_id",
        "long state",
        "state",
    ],
)
def test_body_refusals_word_for_word(body, message, field):
    error = refusal(body)
    assert (str(error), error.field) == (message, field)


def test_a_client_state_of_100_characters_still_gets_an_example():
    state = "é" * 100  # not ASCII, so not base64
    example = repr(__import__("base64").b64encode(state.encode()).decode())
    assert f"encode it first, e.g. {example}. " in str(refusal({"stream_url": URL, "client_state": state}))


class Unreadable(dict):
    def items(self):
        raise TypeError("unhashable")


def test_a_mapping_that_cannot_be_read_word_for_word():
    error = refusal({"stream_url": URL, "custom_parameters": [Unreadable()]})
    assert (str(error), error.field) == (
        "body.custom_parameters[0] cannot be read as an object: pass a plain dict.",
        "body.custom_parameters[0]",
    )


class UnreadableResource(dict):
    def get(self, *args):
        raise TypeError("unhashable")


class SixtyFiveKeysThenBroken(dict):
    """65 keys, then an error: a Mapping read past 65 keys fails."""

    def items(self):
        yield from ((f"k{i}", "v") for i in range(65))
        raise AssertionError("read past 65 keys")


def test_an_object_of_more_than_64_keys_is_refused_after_reading_65():
    error = refusal({"stream_url": URL, "custom_parameters": [SixtyFiveKeysThenBroken()]})
    assert str(error) == "body.custom_parameters[0] has more than 64 keys: no streaming_start object has that many."


def test_a_long_key_is_cut_at_80_characters_in_the_field_it_names():
    error = refusal({"stream_url": URL, "custom_parameters": [{"n" * 100: b"x"}]})
    field = "body.custom_parameters[0]." + "n" * 77 + "..."
    assert (str(error), error.field) == (
        f"{field} is a bytes, which JSON cannot carry: use a string, number, boolean, list or object.",
        field,
    )


FIX_AUTH = "Pick a telnyx resource whose apiKey is your Telnyx API key (it starts with KEY)."
FIX_ID = "Pass data.payload.call_control_id of the call.answered webhook, e.g. v3:9X2vxPDF..."
NOT_SHOWN = "(not shown: it may hold a user or password)"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (["KEY"], f"auth must be a telnyx resource, got list. {FIX_AUTH}"),
        (UnreadableResource(), f"auth cannot be read as an object: pass a plain dict. {FIX_AUTH}"),
        (
            {"apiKey": "KEY01234567890ééé"},
            "auth.apiKey contains spaces, quotes, line breaks or non-ASCII characters "
            f"(not shown). Copy the key again. {FIX_AUTH}",
        ),
        (
            {"apiKey": "KEY0123456789a"},
            f"auth.apiKey is 14 characters: a Telnyx API key is longer. Copy the whole key. {FIX_AUTH}",
        ),
    ],
)
def test_auth_refusals_word_for_word(auth, message):
    assert str(refusal(auth=auth)) == message


@pytest.mark.parametrize("key", ["KEY0123456789abX", "KEYXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"])
def test_keys_of_16_characters_and_with_any_letter_are_sent(api, key):
    api.expect_oneshot_request("/v2/calls/v3:x/actions/streaming_start").respond_with_json({"data": {}})
    assert script.main({"apiKey": key}, "v3:x", {"stream_url": URL}) == {"data": {}}


@pytest.mark.parametrize(
    ("call_id", "message"),
    [
        ("", f"call_control_id must be a non-empty string, got an empty string. {FIX_ID}"),
        ("  ", f"call_control_id must be a non-empty string, got an empty string. {FIX_ID}"),
        (None, f"call_control_id must be a non-empty string, got NoneType. {FIX_ID}"),
        (7, f"call_control_id must be a non-empty string, got int. {FIX_ID}"),
        ("x" * 513, f"call_control_id is 513 characters, too long for an id. {FIX_ID}"),
        (
            AUTH["apiKey"],
            "call_control_id is your API key (not shown): the arguments look swapped. auth is the telnyx resource. "
            + FIX_ID,
        ),
        ("v3 a:pw@h", f"call_control_id contains spaces, line breaks or control characters: {NOT_SHOWN}. {FIX_ID}"),
        ("v3 //alice@h", f"call_control_id contains spaces, line breaks or control characters: {NOT_SHOWN}. {FIX_ID}"),
    ],
)
def test_call_control_id_refusals_word_for_word(call_id, message):
    assert str(refusal(call_id=call_id)) == message


def test_a_call_control_id_of_512_characters_is_sent(api):
    call_id = "v3:" + "x" * 509
    api.expect_oneshot_request(f"/v2/calls/{call_id}/actions/streaming_start").respond_with_json({"data": {}})
    assert script.main(AUTH, call_id, {"stream_url": URL}) == {"data": {}}


def test_limits_of_600_seconds_are_accepted_and_max_retries_word_for_word(api):
    api.expect_oneshot_request("/v2/calls/v3:x/actions/streaming_start").respond_with_json({"data": {}})
    assert script.main(AUTH, "v3:x", {"stream_url": URL}, timeout_s=600, deadline_s=600) == {"data": {}}
    error = refusal(max_retries=11)
    assert (str(error), error.field) == ("max_retries must be a whole number from 0 to 10, got 11.", "max_retries")
    pasted = refusal(timeout_s="10 https://u:pw@h")  # a value that may hold a password is never echoed
    assert str(pasted) == f"timeout_s must be a number of seconds above 0 and at most 600, got {NOT_SHOWN}."


def test_rtp_with_its_codec_and_rate_passes_as_given():
    body = {
        "stream_url": URL,
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "L16",
        "stream_bidirectional_sampling_rate": 16000,
    }
    assert script.check_body(body) == body


def test_the_validator_is_built_on_first_use_and_kept(monkeypatch):
    internals.forget_validator(monkeypatch)  # as in a fresh process (a cold start)
    assert str(refusal({"stream_url": URL, "stream_track": "left"})).startswith(
        'body.stream_track is invalid, got \'left\': use one of "inbound_track", "outbound_track", "both_tracks".'
    )
    built = internals.validator()
    assert built is not None
    assert script.check_body({"stream_url": URL}) == {"stream_url": URL} and internals.validator() is built


def test_a_pointer_keeps_its_capital_letters(serve):
    error = {"code": "1", "title": "Invalid", "source": {"pointer": "/X_custom/Xy"}}
    text = api_error(serve, 422, [], json.dumps({"errors": [error]}).encode())
    assert "\nTelnyx refused body field X_custom.Xy: Invalid\n" in text


# -- helpers whose inputs no server or form reaches today, called directly --------------------------
@pytest.mark.parametrize(
    ("exc", "sent", "failure"),
    [
        (KeyError(), False, ("other", "KeyError: ()", False)),
        (ValueError("a", 2), True, ("unusable", "ValueError: ('a', 2)", True)),
        (OSError("no"), False, ("other", "OSError: no", False)),
    ],
)
def test_an_unforeseen_failure_keeps_its_type_and_text_only(exc, sent, failure):
    assert internals.classify(exc, sent) == failure


def test_masking_a_value_json_cannot_carry_names_its_type():
    assert internals.masked({1j}, "KEY0123456789abcdef") == "'set'"


def test_a_body_that_is_not_an_object_word_for_word():
    error = refusal(["stream_url", URL])
    assert (str(error), error.field) == (
        'body must be an object (a JSON dict of streaming_start fields), got list. Example: {"stream_url": '
        '"wss://example.com/media"}.',
        "body",
    )


def test_answer_has_mains_defaults():
    import inspect

    defaults = lambda f: {n: p.default for n, p in inspect.signature(f).parameters.items()}  # noqa: E731
    assert (
        defaults(script.answer)
        == defaults(script.main)
        == {
            "auth": inspect.Parameter.empty,
            "call_control_id": inspect.Parameter.empty,
            "body": None,
            "timeout_s": 10.0,
            "deadline_s": 20.0,
            "max_retries": 2,
        }
    )


@pytest.mark.parametrize("base", ["https://user:secret-pw@api.telnyx.com/v2?x", "https://:secret-pw@h/v2#"])
def test_a_base_url_holding_a_password_is_refused_without_showing_it(monkeypatch, base):
    monkeypatch.setenv("TELNYX_BASE_URL", base)
    with pytest.raises(script.TelnyxInputError) as refused:
        script.main(AUTH, "v3:x", {"stream_url": URL})
    assert "secret-pw" not in str(refused.value)
    assert "got (not shown: it may hold a user or password)." in str(refused.value)
