"""The emulator's media stream, end to end: the real script starts it, a real WebSocket server
(stream_server/) receives it, and the audio that arrives is the audio that was sent."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from array import array
from typing import Any

import pytest
import requests
from conftest import KEY, ROOT, closed_port, start
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

import audio_codecs as audio
from emulator.media import OUTBOUND_NOTES
from stream_server import Receiver

SECONDS = 1.0


def snr_db(reference: array, received: array) -> float:
    noise = sum((a - b) ** 2 for a, b in zip(reference, received)) or 1
    signal_power = sum(a * a for a in reference) or 1
    return 10 * math.log10(signal_power / noise)


def expected(track: str, codec: str) -> array:
    rate = audio.SAMPLE_RATES[codec]
    if track == "inbound":
        return audio.tones(rate, SECONDS)
    return audio.tones(rate, SECONDS, OUTBOUND_NOTES)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "L16"])
@pytest.mark.parametrize("track", ["inbound_track", "outbound_track", "both_tracks"])
def test_audio_arrives_as_sent(media_emulator, receiver, codec, track):
    call = media_emulator.create_call(duration_s=SECONDS)
    start(call, {"stream_url": receiver.url, "stream_codec": codec, "stream_track": track})
    (report,) = receiver.wait(1, timeout=20)
    assert report.problems == []
    assert report.start["media_format"] == {"encoding": codec, "sample_rate": audio.SAMPLE_RATES[codec], "channels": 1}
    tracks = {"inbound_track": ["inbound"], "outbound_track": ["outbound"], "both_tracks": ["inbound", "outbound"]}[
        track
    ]
    assert sorted(report.media) == sorted(tracks)
    for name in tracks:
        wav = audio.read_wav(report.wavs[name], audio.SAMPLE_RATES[codec])  # what the receiver wrote
        source = expected(name, codec)
        assert len(wav) == len(source) == SECONDS * audio.SAMPLE_RATES[codec]
        assert report.dropped(name) == 0
        if codec == "L16":
            assert wav == source  # lossless
        else:
            assert wav == audio.decode(audio.encode(source, codec), codec)  # exactly G.711's output
            assert snr_db(source, wav) > 30  # and within codec error of the source


def test_wav_file_source_and_default_codec(media_emulator, receiver, tmp_path):
    rate = 8000
    chirp = array(
        "h", (int(12000 * math.sin(2 * math.pi * (200 + 600 * i / rate) * i / rate)) for i in range(rate // 2))
    )
    path = tmp_path / "caller.wav"
    audio.write_wav(path, chirp, rate)
    call = media_emulator.create_call(codec="PCMA", audio=str(path))
    start(call, {"stream_url": receiver.url, "stream_codec": "default"})
    (report,) = receiver.wait(1, timeout=20)
    assert report.codec == "PCMA"  # "default" keeps the call's codec
    assert report.samples("inbound") == audio.decode(audio.encode(chirp, "PCMA"), "PCMA")


@pytest.mark.parametrize("codec", ["G722", "OPUS", "AMR-WB"])
def test_codecs_the_emulator_cannot_encode_fall_back_to_the_calls(media_emulator, receiver, codec):
    start(media_emulator.create_call(duration_s=0.2), {"stream_url": receiver.url, "stream_codec": codec})
    (report,) = receiver.wait(1, timeout=20)
    assert report.codec == "PCMU"


def test_frames_in_order_with_telnyx_shapes(media_emulator, receiver):
    call = media_emulator.create_call(duration_s=0.2)
    state = base64.b64encode(b'{"tenant": "acme"}').decode()
    body = {
        "stream_url": receiver.url,
        "stream_track": "both_tracks",
        "client_state": state,
        "custom_parameters": [{"name": "tenant", "value": "acme"}, {"name": "lang", "value": "fr"}],
    }
    start(call, body)
    (report,) = receiver.wait(1, timeout=20)
    frames = report.frames
    assert [f["event"] for f in frames[:2]] == ["connected", "start"] and frames[-1]["event"] == "stop"
    assert {f["event"] for f in frames[2:-1]} == {"media"}
    assert frames[0] == {"event": "connected", "version": "1.0.0"}
    stream_id = frames[1]["stream_id"]
    numbers = [int(f["sequence_number"]) for f in frames[1:]]
    assert numbers == list(range(1, len(frames)))
    for frame in frames[1:]:
        assert isinstance(frame["sequence_number"], str) and frame["stream_id"] == stream_id
    begin = frames[1]["start"]
    assert begin["call_control_id"] == call and begin["client_state"] == state
    assert begin["custom_parameters"] == {"tenant": "acme", "lang": "fr"}
    assert {"user_id", "call_session_id", "from", "to", "tags", "media_format"} <= set(begin)
    media = frames[2]["media"]
    assert set(media) == {"track", "chunk", "timestamp", "payload"}
    assert all(isinstance(media[k], str) for k in media)
    assert media["chunk"] == "1" and media["timestamp"] == "0" and len(base64.b64decode(media["payload"])) == 160
    assert frames[-1]["stop"]["call_control_id"] == call
    assert report.token_header is None and "connected" not in frames[0]


def test_stream_auth_token_is_delivered_twice(media_emulator, receiver):
    start(media_emulator.create_call(duration_s=0.1), {"stream_url": receiver.url, "stream_auth_token": "s3cret"})
    (report,) = receiver.wait(1, timeout=20)
    assert report.token_header == "s3cret"  # the handshake header, raw (no "Bearer")
    assert report.frames[0]["connected"] == {"x-telnyx-streaming-auth-token": "s3cret"}


def bidirectional_receiver(tmp_path, script_of_frames):
    """A receiver that answers the start frame with the given frames (texts or dicts); its
    ``echoed`` event is set when the emulator sends a mark back."""
    echoed = threading.Event()

    async def on_frame(report, frame, ws):
        if frame["event"] == "start":
            for item in script_of_frames:
                await ws.send(item if isinstance(item, str) else json.dumps(item))
        elif frame["event"] == "mark":
            echoed.set()

    rx = Receiver(tmp_path / "bidi", on_frame=on_frame)
    rx.echoed = echoed  # type: ignore[attr-defined]
    return rx


@pytest.fixture
def live_emulator(monkeypatch, tmp_path):
    """The emulator in real time, for streams that play audio back. In fast mode a stream's ticks
    race the receiver's answers, so what gets played before the call ends depends on the machine."""
    from emulator import Emulator

    with Emulator(api_key=KEY, record_dir=tmp_path / "played") as emu:
        monkeypatch.setenv("TELNYX_BASE_URL", emu.base_url)
        yield emu


def stop_streaming(emu: Any, call: str) -> None:
    """Telnyx's streaming_stop for the call, sent as your app would."""
    stop = requests.post(
        f"{emu.base_url}/calls/{call}/actions/streaming_stop",
        json={},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    assert stop.status_code == 200


def play_until_echoed(emu, rx, body: dict):
    """Start a 30 s call's stream, wait until the emulator echoes a mark (everything the receiver
    sent before it has been handled), then stop the stream: (report, the emulator's stream)."""
    call = emu.create_call(duration_s=30)
    start(call, {"stream_url": rx.url, "stream_bidirectional_mode": "rtp", **body})
    assert rx.echoed.wait(20), "no mark echoed"
    stop_streaming(emu, call)
    (report,) = rx.wait(1, timeout=20)
    (stream,) = emu.wait_streams(call)
    return report, stream


def media_frame(samples: array, codec: str = "PCMU") -> dict:
    return {"event": "media", "media": {"payload": base64.b64encode(audio.encode(samples, codec)).decode()}}


def mark(name: str) -> dict:
    return {"event": "mark", "mark": {"name": name}}


def test_bidirectional_audio_is_played_back_and_the_mark_echoed_after_it(live_emulator, tmp_path):
    back = audio.tones(8000, 0.5, (1000,))
    with bidirectional_receiver(tmp_path, [media_frame(back), mark("after-audio")]) as rx:
        report, stream = play_until_echoed(live_emulator, rx, {"stream_bidirectional_codec": "PCMU"})
    assert stream.played == audio.decode(audio.encode(back, "PCMU"), "PCMU")  # all of it, unchanged
    assert stream.summary()["warnings"] == []  # the codec fits: nothing to say
    events = [f["event"] for f in report.frames]
    assert events.count("mark") == 1
    mark_at = events.index("mark")
    assert report.frames[mark_at]["mark"]["name"] == "after-audio"
    assert events[:mark_at].count("media") >= 25  # 0.5 s of audio = 25 frames played before the mark
    assert stream.mark_waits == [len(back)]  # echoed once all 0.5 s it queued before the mark had played
    wav = requests.get(
        live_emulator.base_url.replace("/v2", f"/_emulator/streams/{stream.stream_id}/played.wav"), timeout=5
    )
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    saved = tmp_path / "played" / f"played-{stream.stream_id}.wav"
    assert audio.read_wav(saved, 8000) == stream.played  # --record-dir keeps it too


def test_l16_bidirectional_at_16k(live_emulator, tmp_path):
    back = audio.tones(16000, 0.2, (500,))
    with bidirectional_receiver(tmp_path, [media_frame(back, "L16"), mark("played")]) as rx:
        body = {"stream_bidirectional_codec": "L16", "stream_bidirectional_sampling_rate": 16000}
        _, stream = play_until_echoed(live_emulator, rx, body)
    assert stream.played == back
    assert stream.mark_waits == [len(back)]


def test_mark_with_nothing_queued_is_echoed_at_once(live_emulator, tmp_path):
    with bidirectional_receiver(tmp_path, [mark("now")]) as rx:
        report, stream = play_until_echoed(live_emulator, rx, {})
    events = [f["event"] for f in report.frames]
    assert report.frames[events.index("mark")]["mark"]["name"] == "now"
    # "at once" on the emulator's playback clock, not in frames seen: how many media frames reach the
    # receiver before the echo depends on how late its thread got to send the mark (a loaded machine)
    assert stream.mark_waits == [0]


def test_clear_drops_queued_audio_and_returns_its_marks(live_emulator, tmp_path):
    long = audio.tones(8000, 3.0, (700,))
    with bidirectional_receiver(tmp_path, [media_frame(long), mark("end-of-reply"), {"event": "clear"}]) as rx:
        report, stream = play_until_echoed(live_emulator, rx, {})
    assert len(stream.played) < 8000 * 0.5  # barge-in: nearly none of the 3 s was played
    assert [f["mark"]["name"] for f in report.frames if f["event"] == "mark"] == ["end-of-reply"]
    assert stream.mark_waits[0] < 8000 * 0.5  # echoed when cleared, not after the 3 s it followed


def test_bad_frames_get_telnyx_error_frames_not_a_crash(live_emulator, tmp_path):
    bad = [
        "not json",
        {"event": "media", "media": {"payload": "***not base64***"}},
        {"event": "media"},
        {"event": "dance"},
        media_frame(audio.tones(8000, 0.1)),  # and a good one still plays
        mark("after-the-good-one"),
    ]
    with bidirectional_receiver(tmp_path, bad) as rx:
        report, stream = play_until_echoed(live_emulator, rx, {})
    errors = [f for f in report.frames if f["event"] == "error"]
    assert [e["payload"]["code"] for e in errors] == [100003, 100004, 100003, 100003]
    assert errors[1]["payload"]["title"] == "invalid_media" and errors[0]["payload"]["title"] == "malformed_frame"
    assert report.frames[-1]["event"] == "stop"
    assert len(stream.played) == 800


def test_frames_from_a_one_way_stream_are_ignored(media_emulator, tmp_path):
    with bidirectional_receiver(tmp_path, ["not json", media_frame(audio.tones(8000, 0.1))]) as rx:
        call = media_emulator.create_call(duration_s=0.5)
        start(call, {"stream_url": rx.url})
        (report,) = rx.wait(1, timeout=20)
    assert not [f for f in report.frames if f["event"] in ("error", "mark")]
    assert len(media_emulator.wait_streams(call)[0].played) == 0


# -- what Telnyx would do with what your server sends, said once per stream -------------------------------------
NOT_RTP = (
    "Telnyx plays them only with stream_bidirectional_mode rtp (this stream has none): the caller heard none of them"
)


def wait_until(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def play_until_counted(emu, rx, body: dict, frames: int):
    """Start a 30 s call's stream, wait until the emulator has counted ``frames`` frames from the receiver,
    then stop the stream: (report, the emulator's stream, what the emulator said)."""
    said: list[str] = []
    emu.narrate(said.append)
    call = emu.create_call(duration_s=30)
    start(call, {"stream_url": rx.url, **body})
    (stream,) = emu.call(call).streams
    wait_until(lambda: sum(stream.received.values()) >= frames, f"{frames} frames counted")
    stop_streaming(emu, call)
    (report,) = rx.wait(1, timeout=20)
    emu.wait_streams(call)
    return report, stream, said


def said_once(said: list[str], words: str) -> str:
    (line,) = [line for line in said if words in line]
    return line


def test_media_mark_and_clear_on_a_stream_that_is_not_rtp_are_not_played_and_said_once(live_emulator, tmp_path):
    speech = audio.tones(8000, 1.12, (523, 659))
    frames = [media_frame(speech[at : at + 160]) for at in range(0, len(speech), 160)]  # 56 frames of 20 ms
    with bidirectional_receiver(tmp_path, [*frames, mark("greeting-done"), {"event": "clear"}]) as rx:
        report, stream, said = play_until_counted(live_emulator, rx, {"stream_track": "both_tracks"}, 58)
    assert len(frames) == 56 and len(stream.played) == 0  # the caller heard nothing
    assert not [f for f in report.frames if f["event"] in ("error", "mark")]  # as reported of Telnyx: no error
    summary = requests.get(live_emulator.base_url.replace("/v2", f"/_emulator/calls/{stream.call.call_control_id}"))
    (reported,) = summary.json()["streams"]  # what the page reads
    assert reported["received"] == reported["ignored"] == {"media": 56, "mark": 1, "clear": 1}
    assert reported["warnings"] == [
        f"your server sent 56 media frames; {NOT_RTP}",
        "your server sent 1 mark frame; Telnyx answers marks only on a bidirectional stream "
        "(stream_bidirectional_mode rtp; this stream has none): none was echoed",
        "your server sent 1 clear frame; Telnyx clears only on a bidirectional stream "
        "(stream_bidirectional_mode rtp; this stream has none): nothing was cleared",
    ]
    line = said_once(said, "your server sends media frames")  # once, not once a frame
    assert line.split(" ", 1)[1] == f"!! stream {stream.stream_id[:8]}: your server sends media frames; {NOT_RTP}"
    said_once(said, "your server sends mark frames")
    said_once(said, "your server sends clear frames")
    assert "not acted on, as said above: 1 clear, 1 mark, 56 media)" in said_once(said, ": stopped (")


def test_raw_audio_on_an_mp3_stream_is_not_played_and_said_once(live_emulator, tmp_path):
    mp3 = {"event": "media", "media": {"payload": base64.b64encode(b"ID3\x04\x00" + bytes(200)).decode()}}
    raw = [media_frame(audio.tones(8000, 0.02, (523,))) for _ in range(10)]  # a bot made for rtp: 20 ms frames
    said: list[str] = []
    live_emulator.narrate(said.append)
    with bidirectional_receiver(tmp_path, [mp3, *raw, mark("after")]) as rx:
        report, stream = play_until_echoed(live_emulator, rx, {"stream_bidirectional_mode": "mp3"})
    summary = stream.summary()
    assert summary["received"] == {"media": 11, "mark": 1} and summary["ignored"] == {"media": 10}
    assert summary["mp3_received"] == 1 and len(stream.played) == 0
    assert summary["warnings"] == [
        "your server sent 10 media frames; they are not MP3 files, and with stream_bidirectional_mode mp3 Telnyx "
        "plays MP3 files only: the caller heard none of them; raw audio plays with stream_bidirectional_mode rtp"
    ]
    # Telnyx's documented limit, one MP3 message a second: the frames right after the first get 100005 (all ten,
    # unless the machine stalled the emulator for a second between two of them)
    codes = [f["payload"]["code"] for f in report.frames if f["event"] == "error"]
    assert set(codes) == {100005} and len(codes) >= 5, codes
    said_once(said, "your server sends media frames; they are not MP3 files")


@pytest.mark.parametrize(("sent", "declared"), [("PCMU", "PCMA"), ("PCMA", "PCMU"), ("L16", "PCMU")], ids=lambda c: c)
def test_a_server_sending_another_codec_than_the_bidirectional_one_is_told_the_caller_hears_noise(
    live_emulator, tmp_path, sent, declared
):
    rate = audio.SAMPLE_RATES[sent]
    speech = audio.tones(rate, 1.0, (523, 659, 784), level=0.25)  # 50 frames of 20 ms, as the bot sends them
    step = rate // 50
    frames = [media_frame(speech[at : at + step], sent) for at in range(0, len(speech), step)]
    said: list[str] = []
    live_emulator.narrate(said.append)
    with bidirectional_receiver(tmp_path, [*frames, mark("spoken")]) as rx:
        _, stream = play_until_echoed(live_emulator, rx, {"stream_bidirectional_codec": declared})
    assert len(frames) == 50 and stream.received["media"] == 50
    received = (
        ", the codec it receives (start.media_format)" if sent == "PCMU" else " (it receives PCMU, start.media_format)"
    )
    words = (
        f"your server sends {sent} audio{received}, but Telnyx plays it as {declared} (stream_bidirectional_codec): "
        f"the caller hears noise; set stream_bidirectional_codec to {sent}, or send {declared}"
    )
    assert stream.summary()["warnings"] == [words]
    assert said_once(said, "the caller hears noise").endswith(words)


def wait_for_events(emulator, call, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = emulator.webhooks.events(call)
        if len(events) >= count:
            return events
        time.sleep(0.02)
    raise AssertionError(f"expected {count} webhooks, got {emulator.webhooks.events(call)}")


def test_unreachable_stream_url_gives_streaming_failed(media_emulator, httpserver):
    httpserver.expect_request("/hooks", method="POST").respond_with_data("ok")
    call = media_emulator.create_call(webhook_url=httpserver.url_for("/hooks"))
    nowhere = f"ws://127.0.0.1:{closed_port()}/nothing-here"
    result = start(call, {"stream_url": nowhere, "client_state": "c3RhdGU="})
    assert result == {"data": {"result": "ok"}}  # the command succeeds; the stream fails later
    (event,) = wait_for_events(media_emulator, call, 1)
    data = event["data"]
    assert data["event_type"] == "streaming.failed" and data["record_type"] == "event"
    payload = data["payload"]
    assert payload["failure_reason"] == "connection_failed" and payload["stream_type"] == "websocket"
    assert payload["stream_params"] == {"stream_url": nowhere, "track": "inbound_track"}
    assert payload["call_control_id"] == call and payload["client_state"] == "c3RhdGU="
    deadline = time.monotonic() + 5
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.02)
    ((posted, _),) = httpserver.log
    assert posted.get_json()["data"]["event_type"] == "streaming.failed"
    assert media_emulator.call(call).streams[0].state == "failed"


@contextlib.contextmanager
def ws_server(handler, **options):
    """A misbehaving WebSocket server of the test's own, on 127.0.0.1 in a thread; yields its URL."""
    loop = asyncio.new_event_loop()
    ready, holder = threading.Event(), {}
    options.setdefault("close_timeout", 1)  # a peer that stops reading never answers the close

    async def run():
        async with serve(handler, "127.0.0.1", 0, **options) as server:
            holder["url"] = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            holder["stop"] = loop.create_future()
            ready.set()
            await holder["stop"]

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield holder["url"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set_result, None)
        thread.join(10)


def test_refused_handshake_is_streaming_failed(media_emulator):
    def refuse(connection, request):
        return Response(403, "Forbidden", Headers(), b"no")

    with ws_server(lambda ws: None, process_request=refuse) as url:
        call = media_emulator.create_call()
        start(call, {"stream_url": url})
        (event,) = wait_for_events(media_emulator, call, 1)
    assert event["data"]["payload"]["failure_reason"] == "connection_failed"


def test_server_closing_early_is_streaming_failed_and_the_emulator_goes_on(live_emulator, tmp_path, receiver):
    # In real time, so the close comes 0.1 s into a 30 s call whatever the machine's speed: in fast
    # mode a loaded receiver could close after the emulator had sent every frame and stop.
    async def hang_up_early(report, frame, ws):
        if frame["event"] == "media" and frame["media"]["chunk"] == "5":
            await ws.close()

    with Receiver(tmp_path / "early", on_frame=hang_up_early) as rx:
        call = live_emulator.create_call(duration_s=30)
        start(call, {"stream_url": rx.url})
        rx.wait(1, timeout=20)
    live_emulator.wait_streams(call)
    events = wait_for_events(live_emulator, call, 2)
    assert [e["data"]["event_type"] for e in events] == ["streaming.started", "streaming.failed"]
    assert events[1]["data"]["payload"]["failure_reason"] == "connection_closed"
    assert live_emulator.call(call).streams[0].summary()["warnings"] == []  # PCMU: no word of L16
    next_call = live_emulator.create_call(duration_s=0.2)  # the emulator still works
    start(next_call, {"stream_url": receiver.url})
    assert receiver.wait(1, timeout=20)[0].problems == []


def test_a_server_closing_an_l16_stream_at_once_is_told_why_that_may_be(live_emulator, tmp_path):
    async def refuse_l16(report, frame, ws):  # as pipecat 1.14 does: its serializer raises, the socket closes
        if frame["event"] == "media" and report.codec == "L16":
            await ws.close()

    said: list[str] = []
    live_emulator.narrate(said.append)
    with Receiver(tmp_path / "l16", on_frame=refuse_l16) as rx:
        call = live_emulator.create_call(duration_s=30)
        start(call, {"stream_url": rx.url, "stream_codec": "L16"})
        rx.wait(1, timeout=20)
    (stream,) = live_emulator.wait_streams(call)
    assert stream.failure_reason == "connection_closed" and stream.frames_sent["inbound"] <= 10
    (warning,) = stream.summary()["warnings"]
    assert warning.startswith("your server closed the stream after ") and "of L16 audio" in warning
    assert "pipecat 1.14's TelnyxFrameSerializer refuses it ('Unsupported encoding: L16')" in warning
    assert said_once(said, "of L16 audio").endswith("Leave stream_codec unset (the call's PCMU or PCMA) or set PCMU")


def test_a_server_that_stops_reading_fails_the_stream(media_emulator):
    async def never_read(ws):
        await ws.wait_closed()  # holds the connection without taking a single message

    with ws_server(never_read, max_queue=1, max_size=None) as url:
        call = media_emulator.create_call(codec="L16", duration_s=120)
        start(call, {"stream_url": url, "stream_codec": "L16", "stream_track": "both_tracks"})
        (stream,) = media_emulator.wait_streams(call, timeout=40)
    assert stream.state == "failed" and stream.failure_reason == "slow_consumer"


def real_time_emulator(monkeypatch):
    from emulator import Emulator

    emu = Emulator(api_key=KEY).start()
    monkeypatch.setenv("TELNYX_BASE_URL", emu.base_url)
    return emu


@pytest.mark.parametrize("how", ["streaming_stop", "hangup"])
def test_stop_and_hangup_end_the_stream_with_stop(monkeypatch, receiver, how):
    emu = real_time_emulator(monkeypatch)
    try:
        call = emu.create_call(duration_s=30)
        start(call, {"stream_url": receiver.url})
        time.sleep(0.5)
        answer = requests.post(
            f"{emu.base_url}/calls/{call}/actions/{how}", json={}, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
        )
        assert answer.json() == {"data": {"result": "ok"}}
        (report,) = receiver.wait(1, timeout=5)
        assert report.frames[-1]["event"] == "stop" and report.problems == []
        assert 10 <= len(report.media["inbound"]) <= 60  # ~0.5 s of 20 ms frames, not the 30 s
        assert emu.call(call).state == ("ended" if how == "hangup" else "answered")
        expected = ["streaming.started", *(["call.hangup"] if how == "hangup" else []), "streaming.stopped"]
        events = wait_for_events(emu, call, len(expected))
        assert [e["data"]["event_type"] for e in events] == expected
    finally:
        emu.stop()


def test_real_time_pacing(monkeypatch, receiver):
    emu = real_time_emulator(monkeypatch)
    try:
        call = emu.create_call(duration_s=1.0)
        began = time.monotonic()
        start(call, {"stream_url": receiver.url})
        (report,) = receiver.wait(1, timeout=10)
        took = time.monotonic() - began
        tracks = report.summary()["tracks"]["inbound"]
        print(f"\nreal time: {took:.2f} s, gap mean {tracks['gap_ms_mean']} ms, p99 {tracks['gap_ms_p99']} ms")
        assert 0.9 < took < 3.0  # 1 s of audio takes about 1 s: paced, not dumped
    finally:
        emu.stop()


def test_python_m_emulator_interface(tmp_path, receiver):
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--fast", "--duration", "0.3"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        ready = json.loads(process.stdout.readline())
        assert set(ready) == {"base_url", "api_key", "call_control_id", "webhook_public_key", "ui_url"}
        assert ready["base_url"].startswith("http://127.0.0.1:") and ready["base_url"].endswith("/v2")
        env = dict(os.environ, TELNYX_BASE_URL=ready["base_url"], TELNYX_API_KEY=ready["api_key"])
        done = subprocess.run(
            [sys.executable, "script.py", ready["call_control_id"], "--body", json.dumps({"stream_url": receiver.url})],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert receiver.wait(1, timeout=20)[0].problems == []
        created = requests.post(ready["base_url"].replace("/v2", "/_emulator/calls"), json={"codec": "PCMA"}, timeout=5)
        assert created.json()["call_control_id"].startswith("v3:")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


@pytest.mark.parametrize("how", [[], ["--incoming"]], ids=["streaming_start", "incoming, answered with its stream"])
def test_demo_runs_end_to_end(tmp_path, how):
    (tmp_path / "old-run-inbound.wav").write_bytes(b"RIFF")  # a former run's file: not kept
    command = [sys.executable, "demo.py", "--seconds", "1", "--out", str(tmp_path), *how]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: OK" in done.stdout and "streaming.started" in done.stdout and "call.hangup" in done.stdout
    assert "/_emulator/ui  (open it now" in done.stdout and "\nnext:\n  ./dev demo --incoming" in done.stdout
    assert not (tmp_path / "old-run-inbound.wav").exists()
    # the bot's settings: it receives the caller only (inbound_track), and the caller hears it (what was played)
    names = [path.name for path in tmp_path.glob("*.wav")]
    kinds = sorted("inbound" if n.endswith("-inbound.wav") else n.split("-")[0].removesuffix(".wav") for n in names)
    assert kinds == ["caller", "inbound", "played"], names
    if how:  # nobody but the demo answered: the answer started the stream
        assert "rings (call.initiated, parked): nobody else answers it" in done.stdout
        assert "webhooks: call.initiated, call.answered, streaming.started" in done.stdout
    # the round trip: the bot's speech, the caller cutting in, the clear, the mark released by it
    assert "the caller spoke over the bot: sent clear (barge-in)" in done.stdout
    assert "mark 'greeting-done' came back" in done.stdout and "the caller heard 1." in done.stdout


def test_the_demo_names_why_the_caller_did_not_hear_the_bot(live_emulator, tmp_path):
    """The demo's verdict (demo.verdict: exit code 1 when it lists anything) on the settings a bot failed with:
    both tracks and no stream_bidirectional_mode. The oracle is the emulator's own account, not the verdict."""
    import demo
    from stream_server import TalkBack

    bot = TalkBack(seconds=1.0)  # 2 media frames of 0.5 s, a mark, then a clear when the caller cuts in
    with Receiver(tmp_path / "rx", on_frame=bot) as rx:
        call = live_emulator.create_call(duration_s=1.0, listen_s=0.5)
        start(call, {"stream_url": rx.url, "stream_track": "both_tracks"})
        rx.wait(1, timeout=30)
    (stream,) = live_emulator.wait_streams(call)
    summary = stream.summary()
    assert summary["received"] == {"media": 2, "mark": 1, "clear": 1} and summary["played_samples"] == 0
    problems = demo.verdict(summary, bot, 8000)
    assert problems[:4] == [
        f"the bot's audio did not reach the caller as sent: your server sent 2 media frames; {NOT_RTP}",
        "the bot's audio did not reach the caller as sent: your server sent 1 mark frame; Telnyx answers marks "
        "only on a bidirectional stream (stream_bidirectional_mode rtp; this stream has none): none was echoed",
        "the bot's audio did not reach the caller as sent: your server sent 1 clear frame; Telnyx clears only on "
        "a bidirectional stream (stream_bidirectional_mode rtp; this stream has none): nothing was cleared",
        "the caller heard none of the bot's audio",
    ]


def test_receiver_flags_frames_out_of_order():
    """The receiver's checks can fail: feed it a stream with its frames in the wrong order."""
    from stream_server import StreamReport

    report = StreamReport()
    payload = base64.b64encode(b"\xff" * 160).decode()
    frames = [
        {"event": "start", "sequence_number": "1", "stream_id": "s", "start": {}},
        {
            "event": "media",
            "sequence_number": "3",
            "stream_id": "s",
            "media": {"track": "inbound", "chunk": "2", "payload": payload},
        },
        {
            "event": "media",
            "sequence_number": "2",
            "stream_id": "s",
            "media": {"track": "inbound", "chunk": "1", "payload": payload},
        },
        {"event": "media", "stream_id": "s", "media": {"track": "inbound", "chunk": "3", "payload": payload}},
    ]
    for frame in frames:
        Receiver._check(report, frame)
    assert report.problems == [
        "first frame was 'start', not connected",
        "sequence_number 2 after 3",
        "media without a digit-string sequence_number",
    ]
    assert report.out_of_order == 1


def emulator_process(*args: str) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--fast", "--duration", "0.3", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, json.loads(process.stdout.readline())  # type: ignore[union-attr]


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, then everything it said on stderr."""
    process.send_signal(signal.SIGTERM)
    _, said = process.communicate(timeout=10)
    assert process.returncode == 0
    return said


def start_through_the_cli(ready: dict, call: str, body: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ, TELNYX_BASE_URL=ready["base_url"], TELNYX_API_KEY=ready["api_key"])
    return subprocess.run(
        [sys.executable, "script.py", call, "--body", json.dumps(body)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_emulator_says_what_happens_and_a_failed_stream_cannot_be_missed(receiver):
    process, ready = emulator_process("--calls", "3")
    try:
        calls = ready["call_control_ids"]
        assert len(calls) == 3 and calls[0] == ready["call_control_id"] and len(set(calls)) == 3
        assert (
            start_through_the_cli(ready, calls[0], {"stream_url": receiver.url, "stream_codec": "G722"}).returncode == 0
        )
        receiver.wait(1, timeout=20)
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there: the README's first command with no server on 8765
        assert start_through_the_cli(ready, calls[1], {"stream_url": f"ws://127.0.0.1:{port}"}).returncode == 0
        time.sleep(1.0)
    finally:
        said = stop(process)
    lines = said.splitlines()
    assert "emulator ready at " in lines[0] and "/_emulator/calls" in lines[0]
    stream_line = f"POST /v2/calls/{calls[0]}/actions/streaming_start -> 200 command_id="
    assert any(stream_line in line for line in lines), said
    assert any("stream_codec G722 is not encoded here: sending the call's codec PCMU" in line for line in lines)
    assert any(": connected" in line for line in lines)
    assert any(": stopped (inbound " in line and " frames, " in line for line in lines), said
    failed = [line for line in lines if "STREAM FAILED" in line]
    assert len(failed) == 1 and failed[0].split(" ", 1)[1].startswith("!! stream ") and "connection_failed" in failed[0]


def test_quiet_says_nothing():
    process, ready = emulator_process("--quiet")
    assert set(ready) == {"base_url", "api_key", "call_control_id", "webhook_public_key", "ui_url"}
    assert stop(process) == ""
