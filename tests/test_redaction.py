"""The API key never shows: not in messages, reprs, tracebacks, pickles, log records or results."""

from __future__ import annotations

import logging

import pytest
from conftest import KEY, URL, closed_port, everything_said

import script

SCENARIOS = {
    "success": [],
    "503 then ok": [{"kind": "status", "status": 503}],
    "503 exhausted": [{"kind": "status", "status": 503}] * 3,
    "429": [{"kind": "status", "status": 429, "retry_after": 0}] * 3,
    "reset": [{"kind": "reset"}] * 3,
    "reset after processing": [{"kind": "reset", "process": True}],
    "timeout": [{"kind": "delay", "seconds": 0.5}] * 3,
    "redirect": [{"kind": "redirect", "location": "http://127.0.0.2:1/steal"}],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_key_in_any_output(emulator, caplog, capsys, scenario):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests log at DEBUG: capture all of it
    call = emulator.create_call()
    emulator.add_faults(SCENARIOS[scenario], call)
    try:
        outcome = script.main({"apiKey": KEY}, call, {"stream_url": URL}, timeout_s=0.2)
    except script.TelnyxError as error:
        outcome = error
    seen = everything_said(outcome) + caplog.text + "".join(capsys.readouterr())
    assert KEY not in seen
    assert caplog.records, "nothing was logged: the check would prove nothing"


@pytest.mark.parametrize(
    ("auth", "body"),
    [
        ({"apiKey": KEY + " x"}, {"stream_url": URL}),
        ({"apiKey": KEY + "\n"}, {"stream_url": "http://bad"}),
        ({"apiKey": KEY}, {"stream_url": URL, "stream_trak": KEY}),
        ({"apiKey": KEY}, {"stream_url": URL, "stream_auth_token": KEY * 200}),
        ({"apiKey": KEY}, {"stream_url": URL, "stream_auth_token": 12}),
    ],
)
def test_no_key_in_input_errors(api, auth, body):
    with pytest.raises(script.TelnyxInputError) as info:
        script.main(auth, "v3:x", body)
    assert KEY not in everything_said(info.value)


def test_unreachable_host_message_has_no_key(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:{closed_port()}/v2")
    with pytest.raises(script.TelnyxConnectionError) as info:
        script.main({"apiKey": KEY}, "v3:x", {"stream_url": URL}, max_retries=1)
    assert KEY not in everything_said(info.value) + caplog.text


def test_connection_error_keeps_no_request_with_the_key(monkeypatch):
    """`from None` only hides the context: the error must not hold the prepared request at all."""
    monkeypatch.setenv("TELNYX_BASE_URL", f"http://127.0.0.1:{closed_port()}/v2")  # refused, on this machine
    with pytest.raises(script.TelnyxConnectionError) as info:
        script.main({"apiKey": KEY}, "v3:x", {"stream_url": URL}, max_retries=0)
    error = info.value
    assert error.__context__ is None and error.__cause__ is None
    frames_free = {k: v for k, v in vars(error).items()}
    assert KEY not in repr(frames_free)
