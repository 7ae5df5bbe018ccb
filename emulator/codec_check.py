"""Telnyx's side, no sockets: does the audio a stream server sends back fit ``stream_bidirectional_codec``?

Telnyx plays what the server sends as the codec the command declared, whatever it is: PCMA played as
PCMU (or the reverse, or G.711 as L16) reaches the caller as loud noise, and nothing anywhere says so.
Telnyx does not check this (not documented; the emulator adds the check to tell the user, and changes
nothing the server receives).

How it tells: speech and tones change little from one sample to the next, and decoding with the wrong
G.711 law (or G.711 bytes as 16-bit samples) scrambles the magnitudes, which makes the signal far
rougher. So the payloads are decoded as each codec the emulator knows, and the roughness (energy of
the sample-to-sample difference over the signal's energy, 0 for a constant, about 2 for white noise) is
compared: when another codec reads the same bytes as much smoother audio, that is what the server
sends. Silent payloads are skipped; nothing is decided on less than ``NEEDED_BYTES`` of sound, and a server
that sends noise whatever the codec gets no verdict. Tested with samples alone (tests/test_codec_check.py).
"""

from __future__ import annotations

from array import array

import audio_codecs as audio

NEEDED_BYTES = 4000  # of audible payload before deciding (0.5 s of G.711)
QUIET_RMS = 100  # a payload quieter than this (as declared) is silence: it tells nothing
SMOOTHER = 0.6  # another codec must read the bytes at most this rough, relatively, to be the one sent
AUDIO_LIKE = 1.0  # and be audio at all (white noise is about 2)


def roughness_terms(samples: array) -> tuple[float, float]:
    """(energy of the sample-to-sample difference, energy), both of the signal less its mean."""
    if len(samples) < 2:
        return 0.0, 0.0
    mean = sum(samples) / len(samples)
    energy = sum((s - mean) ** 2 for s in samples)
    difference = sum((b - a) ** 2 for a, b in zip(samples, samples[1:]))
    return float(difference), energy


class CodecCheck:
    """Fed the payloads of a bidirectional stream, it decides once whether they are in ``declared``."""

    def __init__(self, declared: str) -> None:
        self.declared = declared
        self.candidates = [c for c in audio.SAMPLE_RATES if c != declared]
        self.heard = 0  # bytes of audible payload seen (audible as declared)
        self.sums = {c: [0.0, 0.0] for c in (declared, *self.candidates)}
        self.verdict: str | None = None  # the codec the server sends, once decided (may be ``declared``)

    @property
    def decided(self) -> bool:
        return self.verdict is not None or self.declared not in audio.SAMPLE_RATES

    def add(self, payload: bytes) -> str | None:
        """Take one payload; return the codec the server really sends the first time it is found to
        differ from the declared one, else None."""
        if self.decided:
            return None
        declared = audio.decode(payload, self.declared)
        difference, energy = roughness_terms(declared)
        if not declared or energy / len(declared) < QUIET_RMS**2:
            return None
        self.heard += len(payload)
        self._add(self.declared, difference, energy)
        for codec in self.candidates:
            try:
                self._add(codec, *roughness_terms(audio.decode(payload, codec)))
            except ValueError:  # e.g. an odd number of bytes is no L16
                continue
        if self.heard < NEEDED_BYTES:
            return None
        rough = {codec: d / e for codec, (d, e) in self.sums.items() if e > 0}
        best = min(rough, key=rough.__getitem__)
        fits = best == self.declared or not (
            rough[best] < AUDIO_LIKE and rough[best] < SMOOTHER * rough.get(self.declared, AUDIO_LIKE)
        )
        self.verdict = self.declared if fits else best
        return None if fits else best

    def _add(self, codec: str, difference: float, energy: float) -> None:
        self.sums[codec][0] += difference
        self.sums[codec][1] += energy
