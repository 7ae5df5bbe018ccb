"""The emulator's codec check (emulator/codec_check.py) with samples alone, no sockets: audio a server
sends in another codec than ``stream_bidirectional_codec`` is found, and nothing else is: not audio in
the right codec, not silence, not noise, not too little audio."""

from __future__ import annotations

import math
import random
from array import array

import pytest

import audio_codecs as audio
from emulator.codec_check import NEEDED_BYTES, CodecCheck

CODECS = list(audio.SAMPLE_RATES)  # PCMU, PCMA, L16: what the emulator decodes


def speech_like(rate: int, seconds: float) -> array:
    """A voice-like test signal: a 140 Hz buzz with falling harmonics, its loudness moving 4 times a second."""
    out = array("h")
    for i in range(int(rate * seconds)):
        t = i / rate
        buzz = sum(math.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 20) if 140 * k < rate / 2)
        out.append(int(5000 * buzz * (0.55 + 0.45 * math.sin(2 * math.pi * 4 * t))))
    return out


SIGNALS = {
    "tones": lambda rate: audio.tones(rate, 1.5, (523, 659, 784), level=0.25),
    "speech-like": lambda rate: speech_like(rate, 1.5),
}


def feed(check: CodecCheck, samples: array, codec: str) -> list[str]:
    """The samples in the codec, in 20 ms payloads as a bot sends them; every verdict the check gave."""
    step = audio.SAMPLE_RATES[codec] // 50
    said = [check.add(audio.encode(samples[at : at + step], codec)) for at in range(0, len(samples), step)]
    return [s for s in said if s is not None]


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("declared", CODECS)
@pytest.mark.parametrize("sent", CODECS)
def test_what_the_server_sends_is_found(signal, sent, declared):
    check = CodecCheck(declared)
    said = feed(check, SIGNALS[signal](audio.SAMPLE_RATES[sent]), sent)
    assert check.verdict == sent
    assert said == ([] if sent == declared else [sent])  # said once, only when it differs


@pytest.mark.parametrize("declared", CODECS)
def test_silence_and_noise_tell_nothing(declared):
    rng = random.Random(7)
    noise = array("h", (max(-32768, min(32767, int(rng.gauss(0, 4000)))) for _ in range(16000)))
    check = CodecCheck(declared)
    assert feed(check, array("h", [0] * 16000), declared) == [] and check.verdict is None  # silence: undecided
    for codec in CODECS:  # noise, whatever codec it came in: never a verdict against the declared codec
        assert feed(check, noise, codec) == []


def test_nothing_is_decided_on_too_little_audio():
    check = CodecCheck("PCMA")
    speech = audio.encode(speech_like(8000, 1.0), "PCMU")
    assert check.add(speech[: NEEDED_BYTES - 160]) is None and check.verdict is None
    assert check.add(speech[NEEDED_BYTES - 160 : NEEDED_BYTES]) == "PCMU"  # 20 ms more: enough


def test_a_codec_the_emulator_does_not_decode_is_not_checked():
    check = CodecCheck("OPUS")
    assert check.decided and check.add(audio.encode(speech_like(8000, 1.0), "PCMU")) is None
