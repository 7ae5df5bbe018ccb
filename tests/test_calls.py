"""The emulator is honest about a call's life, as Telnyx documents it: an incoming call rings (parked)
until the application's answer command, or rings out; an outgoing call is answered by its callee;
answer takes its stream fields and client_state; a repeated command_id is ignored for 60 s. And
script.answer sends that command with streaming start's guarantees."""

from __future__ import annotations

import json

import pytest
from conftest import AUTH, KEY, URL, everything_said

import script
from emulator import Emulator


def events(emulator: Emulator, call: str) -> list[tuple[str, dict]]:
    return [(e["data"]["event_type"], e["data"]["payload"]) for e in emulator.webhooks.events(call)]


def sent(emulator: Emulator, call: str, action: str) -> list[dict]:
    return [json.loads(r.body) for r in emulator.backend.requests if r.path == f"/v2/calls/{call}/actions/{action}"]


def test_an_incoming_call_is_parked_until_answered_and_cannot_stream_before(emulator):
    call = emulator.ring()
    ((kind, payload),) = events(emulator, call)
    assert (kind, payload["direction"], payload["state"]) == ("call.initiated", "incoming", "parked")
    with pytest.raises(script.TelnyxAPIError) as refused:
        script.main(AUTH, call, {"stream_url": URL})
    assert refused.value.codes == ["90034"]  # not answered yet
    state = "eyJ0ZW5hbnQiOiAiYWNtZSJ9"
    assert script.answer(AUTH, call, {"client_state": state}) == {"data": {"result": "ok"}}
    assert emulator.call(call).state == "answered"
    script.main(AUTH, call, {"stream_url": URL})
    assert [(k, p["client_state"]) for k, p in events(emulator, call)][1:] == [("call.answered", state)]
    emulator.hangup(call)
    assert events(emulator, call)[-1][1]["client_state"] == state  # carried in every later webhook


def test_answer_with_stream_fields_starts_the_stream_at_once(emulator):
    call = emulator.ring()
    body = {"stream_url": URL, "stream_track": "both_tracks", "stream_codec": "PCMA", "client_state": "b2s="}
    script.answer(AUTH, call, body)
    (stream,) = emulator.call(call).streams
    assert stream.params == body and sent(emulator, call, "answer")[0]["command_id"]  # one id for every attempt


def test_a_repeated_answer_is_ignored_and_an_answered_or_ended_call_refuses_another(emulator):
    call = emulator.ring()
    script.answer(AUTH, call, {"command_id": "evt-1", "stream_url": URL})
    script.answer(AUTH, call, {"command_id": "evt-1", "stream_url": URL})  # Telnyx drops the repeat
    assert [k for k, _ in events(emulator, call)] == ["call.initiated", "call.answered"]
    assert emulator.call(call).streams_started == 1
    with pytest.raises(script.TelnyxAPIError) as again:
        script.answer(AUTH, call, {"command_id": "evt-2"})
    assert again.value.status == 422 and "already been answered" in str(again.value)
    emulator.hangup(call)
    with pytest.raises(script.TelnyxAPIError) as ended:
        script.answer(AUTH, call, {"command_id": "evt-3"})
    assert ended.value.codes == ["90018"]


def test_a_command_id_is_a_new_command_after_60_s(emulator):
    call = emulator.ring()
    script.answer(AUTH, call, {"command_id": "evt-1"})
    for seen in emulator.call(call).command_ids:  # as if the first was seen 61 s ago (no test waits a minute)
        emulator.call(call).command_ids[seen] -= 61
    with pytest.raises(script.TelnyxAPIError, match="already been answered"):
        script.answer(AUTH, call, {"command_id": "evt-1"})


def test_an_incoming_call_nobody_answers_rings_out():
    with Emulator(api_key=KEY, media=False) as emulator:
        call = emulator.ring(ring_timeout_s=0.2)
        hangup = emulator.webhooks.wait_event(call, "call.hangup", timeout=10)
        assert (hangup["hangup_cause"], emulator.call(call).state) == ("timeout", "ended")
        assert "rang out" in emulator.call(call).ended_why


def test_an_outgoing_call_is_answered_by_its_callee_not_by_the_answer_command(emulator):
    call = emulator.ring(direction="outgoing")
    ((kind, payload),) = events(emulator, call)
    assert (kind, payload["direction"], payload["state"]) == ("call.initiated", "outgoing", "bridging")
    with pytest.raises(script.TelnyxAPIError, match="answered by the callee"):
        script.answer(AUTH, call, {})
    emulator.pick_up(call)
    assert [k for k, _ in events(emulator, call)] == ["call.initiated", "call.answered"]
    incoming = emulator.ring()
    with pytest.raises(Exception, match="answered by your application's answer command"):
        emulator.pick_up(incoming)


def test_a_call_hung_up_while_ringing_ends_with_originator_cancel(emulator):
    call = emulator.ring()
    emulator.hangup(call)
    assert events(emulator, call)[-1][1]["hangup_cause"] == "originator_cancel"
    assert emulator.call(call).ended_why == "hung up by the caller while it rang"


def test_answer_retries_twice_by_default_with_one_command_id(emulator):
    """The limit in behaviour (test_messages checks the signature; mutmut copies it, so it cannot see a change)."""
    for faults, answered in ((2, True), (3, False)):
        call = emulator.ring()
        emulator.add_faults([{"kind": "status", "status": 503}] * faults, call)
        if answered:
            script.answer(AUTH, call, {})
        else:
            with pytest.raises(script.TelnyxAPIError, match=r"^503 "):
                script.answer(AUTH, call, {})
        ids = [body["command_id"] for body in sent(emulator, call, "answer")]
        assert len(ids) == 3 and len(set(ids)) == 1, ids
        assert emulator.call(call).state == ("answered" if answered else "ringing")


def test_answer_refuses_what_answer_does_not_take_and_sends_nothing(emulator):
    call = emulator.ring()
    with pytest.raises(script.TelnyxInputError) as refused:
        script.answer(AUTH, call, {"stream_url": URL, "stream_auth_token": "secret-token-1"})
    assert str(refused.value) == (
        "body has an unknown field 'stream_auth_token': answer does not take it: start the stream with "
        "streaming_start after call.answered. Fields answer accepts: " + ", ".join(script.ANSWER_FIELDS) + "."
    )
    with pytest.raises(script.TelnyxInputError, match="did you mean 'stream_track'"):
        script.answer(AUTH, call, {"stream_trak": "both_tracks"})
    with pytest.raises(script.TelnyxInputError, match=r"body\.stream_track is invalid"):
        script.answer(AUTH, call, {"stream_track": "left"})
    for fields in ({"stream_track": "inbound_track"}, {"stream_bidirectional_mode": "rtp", "client_state": "YQ=="}):
        with pytest.raises(script.TelnyxInputError) as streamless:  # stream fields, no stream_url: nothing would stream
            script.answer(AUTH, call, fields)
        assert streamless.value.field == "body.stream_url"
    assert str(streamless.value) == (
        "body.stream_url is missing, but stream_bidirectional_mode is set: answer starts a stream only with a "
        "stream_url, so Telnyx would answer the call and stream nothing. Set body.stream_url to your WebSocket "
        "server, e.g. wss://your-server.example.com/media, or remove the stream fields to answer without a stream."
    )
    with pytest.raises(script.TelnyxInputError, match="but stream_track, stream_codec are set: "):
        script.check_answer_body({"stream_track": "both_tracks", "stream_codec": "PCMU"})
    assert emulator.backend.requests == []
    assert script.check_answer_body({}) == {}  # no stream_url: answered, nothing streams yet
    assert script.check_answer_body({"client_state": "YQ==", "command_id": "e"}) == {
        "client_state": "YQ==",
        "command_id": "e",
    }
    assert set(script.ANSWER_FIELDS) < set(script.BODY_FIELDS)


def test_answer_has_the_deadline_the_retries_and_the_masking_of_main(emulator):
    call = emulator.ring()
    emulator.add_faults([{"kind": "reset", "process": True}], call)  # answered, then the answer is lost
    assert script.answer(AUTH, call, {"stream_url": URL}, max_retries=1) == {"data": {"result": "ok"}}
    first, second = sent(emulator, call, "answer")
    assert first == second and first["command_id"]  # the retry repeated the one command_id: dropped
    assert emulator.call(call).streams_started == 1
    with pytest.raises(script.TelnyxAPIError) as error:
        script.answer({"apiKey": KEY.replace("SECRET", "WRONGG")}, call, {})
    assert error.value.status == 401 and KEY.replace("SECRET", "WRONGG") not in everything_said(error.value)
