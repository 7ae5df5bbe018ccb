"""Telnyx's side, no sockets: what a stream server sends back, played into the call in real time.

Audio is queued as it arrives (``media``), a ``mark`` waits in the queue until the audio before it has
played, a ``clear`` drops what is queued (barge-in) and releases every mark still waiting. Each
call returns the marks now due; the stream (media.py) echoes them to the server. Tested with
samples alone (tests/test_playback.py).
"""

from __future__ import annotations

import collections
from array import array


class Mark(str):
    """A mark from the stream server; ``played_before`` is how much audio had been played back when
    it arrived, so its echo can record the wait on the playback clock, not the wall clock."""

    played_before: int = 0


class Playback:
    def __init__(self, rate: int, played: array | None = None) -> None:
        self.rate = rate  # samples per second of the audio sent back
        self.played = array("h") if played is None else played  # everything played so far
        self.queue: collections.deque = collections.deque()  # sample arrays and Marks, in order

    def audio(self, samples: array) -> None:
        self.queue.append(samples)

    def mark(self, name: str) -> list[Mark]:
        """Queue a mark; due at once when nothing is queued before it."""
        mark = Mark(name)
        mark.played_before = len(self.played)
        if self.queue:
            self.queue.append(mark)
            return []
        return [mark]

    def clear(self) -> tuple[int, list[Mark]]:
        """Drop everything queued; return how many items were dropped and the marks released."""
        marks = [item for item in self.queue if isinstance(item, Mark)]
        dropped = len(self.queue)
        self.queue.clear()
        return dropped, marks

    def tick(self, ms: int) -> list[Mark]:
        """Play ``ms`` milliseconds of the queue; return the marks reached."""
        need = self.rate * ms // 1000
        due: list[Mark] = []
        while self.queue and (need > 0 or isinstance(self.queue[0], Mark)):
            item = self.queue[0]
            if isinstance(item, Mark):
                due.append(self.queue.popleft())
                continue
            taken = item[:need]
            self.played.extend(taken)
            need -= len(taken)
            if len(taken) == len(item):
                self.queue.popleft()
            else:
                self.queue[0] = item[len(taken) :]
        return due
