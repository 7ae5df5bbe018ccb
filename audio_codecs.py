"""Audio for the emulator and the example stream server: G.711 (PCMU, PCMA), L16, WAV files, a test signal.

Samples are signed 16-bit integers in an ``array('h')``. G.711 follows ITU-T G.711 (the classic
Sun reference algorithm); Python 3.13 removed ``audioop``, so the tables are built here, once.
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path
from typing import BinaryIO

# The codecs the emulator can really encode; the others fall back to the call's codec.
SAMPLE_RATES = {"PCMU": 8000, "PCMA": 8000, "L16": 16000}
FRAME_MS = 20


def _ulaw_decode(byte: int) -> int:
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -sample if sign else sample


def _ulaw_encode(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    quantised = (sample >> 2) << 2  # G.711 mu-law works on 14 bits; floor, as the reference does
    magnitude = min(-quantised if sign else quantised, 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _alaw_decode(byte: int) -> int:
    byte ^= 0x55
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    if exponent == 0:
        sample = (mantissa << 4) + 8
    else:
        sample = ((mantissa << 4) + 0x108) << (exponent - 1)
    return sample if sign else -sample


def _alaw_encode(sample: int) -> int:
    if sample >= 0:
        mask, magnitude = 0xD5, sample
    else:
        mask, magnitude = 0x55, -sample - 1
    magnitude = min(magnitude, 32767)
    if magnitude < 256:
        code = magnitude >> 4
    else:
        exponent = magnitude.bit_length() - 8
        code = (exponent << 4) | ((magnitude >> (exponent + 3)) & 0x0F)
    return code ^ mask


ULAW_TO_LINEAR = array("h", (_ulaw_decode(b) for b in range(256)))
ALAW_TO_LINEAR = array("h", (_alaw_decode(b) for b in range(256)))
# Index by sample & 0xFFFF (two's complement): one table lookup per sample.
_LINEAR_TO_ULAW = bytes(_ulaw_encode(s - 65536 if s >= 32768 else s) for s in range(65536))
_LINEAR_TO_ALAW = bytes(_alaw_encode(s - 65536 if s >= 32768 else s) for s in range(65536))


def encode(samples: array, codec: str) -> bytes:
    """16-bit samples to a codec's payload bytes (RTP payload, no header)."""
    if codec == "PCMU":
        return bytes(_LINEAR_TO_ULAW[s & 0xFFFF] for s in samples)
    if codec == "PCMA":
        return bytes(_LINEAR_TO_ALAW[s & 0xFFFF] for s in samples)
    if codec == "L16":  # network byte order, as RTP carries it (RFC 3551)
        out = array("h", samples)
        if sys.byteorder == "little":
            out.byteswap()
        return out.tobytes()
    raise ValueError(f"cannot encode {codec}")


def decode(payload: bytes, codec: str) -> array:
    """A codec's payload bytes to 16-bit samples."""
    if codec == "PCMU":
        return array("h", (ULAW_TO_LINEAR[b] for b in payload))
    if codec == "PCMA":
        return array("h", (ALAW_TO_LINEAR[b] for b in payload))
    if codec == "L16":
        if len(payload) % 2:
            raise ValueError("L16 payload has an odd number of bytes")
        out = array("h")
        out.frombytes(payload)
        if sys.byteorder == "little":
            out.byteswap()
        return out
    raise ValueError(f"cannot decode {codec}")


def tones(rate: int, seconds: float, notes: tuple = (440, 554, 659, 880), level: float = 0.3) -> array:
    """A recognisable test signal: notes of 0.25 s, each with a 50 ms pause, repeated."""
    out = array("h")
    step = 0.3
    for i in range(int(rate * seconds)):
        t = i / rate
        note = notes[int(t / step) % len(notes)]
        on = (t % step) < 0.25
        out.append(int(level * 32767 * math.sin(2 * math.pi * note * t)) if on else 0)
    return out


def read_wav(path: str | Path, rate: int) -> array:
    """A 16-bit PCM WAV (mono or stereo, any rate) as mono samples at ``rate``."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
        channels, source_rate = wav.getnchannels(), wav.getframerate()
        data = array("h")
        data.frombytes(wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        data.byteswap()
    if channels > 1:
        data = array("h", (sum(data[i : i + channels]) // channels for i in range(0, len(data), channels)))
    return resample(data, source_rate, rate)


def write_wav(path: str | Path | BinaryIO, samples: array, rate: int) -> None:
    data = array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(str(path) if isinstance(path, (str, Path)) else path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())


def resample(samples: array, source_rate: int, rate: int) -> array:
    """Linear interpolation: good enough for a test signal."""
    if source_rate == rate or not samples:
        return array("h", samples)
    count = int(len(samples) * rate / source_rate)
    last = len(samples) - 1
    out = array("h")
    for i in range(count):
        x = i * source_rate / rate
        j = min(int(x), last)
        k = min(j + 1, last)
        out.append(int(samples[j] + (samples[k] - samples[j]) * (x - j)))
    return out
