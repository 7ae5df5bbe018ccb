"""The codecs: G.711 tables equal the reference (audioop, while Python still ships it), L16 is lossless."""

from __future__ import annotations

import io
import warnings
from array import array

import pytest

import audio_codecs as audio

EVERY_SAMPLE = array("h", range(-32768, 32768))


def reference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:  # Python 3.13 removed it
            pytest.skip("audioop is not available on this Python")
    return audioop


@pytest.mark.parametrize(
    ("codec", "encoder", "decoder"), [("PCMU", "lin2ulaw", "ulaw2lin"), ("PCMA", "lin2alaw", "alaw2lin")]
)
def test_g711_matches_the_reference_for_every_sample(codec, encoder, decoder):
    audioop = reference()
    assert audio.encode(EVERY_SAMPLE, codec) == getattr(audioop, encoder)(EVERY_SAMPLE.tobytes(), 2)
    every_byte = bytes(range(256))
    assert audio.decode(every_byte, codec).tobytes() == getattr(audioop, decoder)(every_byte, 2)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_error_is_bounded(codec):
    decoded = audio.decode(audio.encode(EVERY_SAMPLE, codec), codec)
    for sample, back in zip(EVERY_SAMPLE[::7], decoded[::7]):
        assert abs(sample - back) <= max(abs(sample) / 16, 16) + 1  # G.711: ~4 bits of mantissa


def test_l16_is_big_endian_and_lossless():
    assert audio.encode(array("h", [1, -2]), "L16") == b"\x00\x01\xff\xfe"
    assert audio.decode(audio.encode(EVERY_SAMPLE, "L16"), "L16") == EVERY_SAMPLE
    with pytest.raises(ValueError):
        audio.decode(b"\x00", "L16")


def test_wav_round_trip_and_resampling(tmp_path):
    tone = audio.tones(16000, 0.5)
    buffer = io.BytesIO()
    audio.write_wav(buffer, tone, 16000)
    path = tmp_path / "t.wav"
    path.write_bytes(buffer.getvalue())
    assert audio.read_wav(path, 16000) == tone
    assert len(audio.read_wav(path, 8000)) == 4000
