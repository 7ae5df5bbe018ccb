"""The stream's playback (emulator/playback.py) with samples alone, no sockets: queued audio plays 20 ms
a tick, a mark is due once the audio before it has played, clear drops the queue and releases marks."""

from __future__ import annotations

from array import array

from emulator.playback import Playback

RATE = 8000
TICK = 20  # ms: 160 samples at 8 kHz


def samples(n: int, value: int = 1) -> array:
    return array("h", [value] * n)


def test_a_mark_with_nothing_queued_is_due_at_once():
    playback = Playback(RATE)
    (mark,) = playback.mark("m0")
    assert mark == "m0" and mark.played_before == 0 and not playback.queue


def test_a_mark_waits_for_the_audio_before_it():
    playback = Playback(RATE)
    playback.audio(samples(400))  # 50 ms
    assert playback.mark("after-50ms") == []
    assert playback.tick(TICK) == [] and len(playback.played) == 160
    assert playback.tick(TICK) == [] and len(playback.played) == 320
    (due,) = playback.tick(TICK)  # the last 80 samples, then the mark
    assert due == "after-50ms" and due.played_before == 0 and len(playback.played) == 400


def test_audio_is_played_in_order_across_items_and_ticks():
    playback = Playback(RATE)
    playback.audio(samples(100, 1))
    playback.audio(samples(100, 2))
    playback.tick(TICK)
    assert list(playback.played) == [1] * 100 + [2] * 60
    playback.tick(TICK)
    assert list(playback.played) == [1] * 100 + [2] * 100 and not playback.queue
    assert playback.tick(TICK) == [] and len(playback.played) == 200  # nothing queued: silence is not recorded


def test_clear_drops_the_queue_and_releases_every_waiting_mark():
    playback = Playback(RATE)
    playback.audio(samples(1600))
    playback.mark("a")
    playback.audio(samples(1600))
    playback.mark("b")
    playback.tick(TICK)
    dropped, released = playback.clear()
    assert dropped == 4 and released == ["a", "b"] and not playback.queue
    assert len(playback.played) == 160  # the barge-in cut the rest
    assert playback.tick(TICK) == []


def test_the_rate_sets_how_much_a_tick_plays_and_played_is_shared():
    played = array("h")
    playback = Playback(16000, played)
    playback.audio(samples(1000))
    playback.tick(TICK)
    assert len(played) == 320  # 20 ms at 16 kHz, into the array the stream records
