"""Messages word for word, where a user reads them: hints on Telnyx's answers and values shown in
input errors (the oracle is the text written here, not the script's code)."""

from __future__ import annotations

import json

import pytest
from conftest import AUTH, URL
from rawserver import answer, replying

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
