"""The emulator's page (GET /_emulator/ui) in headless Chromium (Debian's chromium; ./dev test installs
it), driven over the DevTools protocol with websockets: it shows what the API reports and updates
while a stream runs, its buttons work, a screenshot shows a page, and it does not slow the media."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY
from websockets.sync.client import connect

import script
from emulator import Emulator
from stream_server import Receiver

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        message = "no chromium: ./dev test installs Debian's package (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="chromium-")
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1200,900",
            "about:blank",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        began = time.monotonic()
        while port is None and time.monotonic() - began < 30:
            line = process.stderr.readline()  # type: ignore[union-attr]
            if "DevTools listening on ws://" in line:
                port = int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        assert port is not None, "chromium did not start"
        yield port
    finally:
        process.kill()
        process.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """One tab, over the DevTools protocol."""

    def __init__(self, port: int) -> None:
        new_tab = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(new_tab, timeout=10) as r:
            target = json.loads(r.read())
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(target["webSocketDebuggerUrl"], max_size=1 << 25, open_timeout=10))
        self.next_id = 0

    def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("document.querySelector('#calls') && document.body.dataset.updated")

    def wait_for(self, expression: str, timeout: float = 10) -> Any:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            value = self.js(f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()")
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the page never showed: {expression}")

    def close(self) -> None:
        self._stack.close()


def api(emulator: Emulator, path: str) -> Any:
    with urllib.request.urlopen(emulator.base_url.replace("/v2", path), timeout=5) as answer:
        return json.loads(answer.read())


def frames_shown(page: Page, call: str) -> dict[str, int]:
    return page.js(
        f"""Object.fromEntries([...document.querySelectorAll('[data-call="{call}"] [data-track]')]
            .filter(r => r.querySelector('.frames'))
            .map(r => [r.dataset.track, Number(r.querySelector('.frames').textContent)]))"""
    )


def png_pixels_vary(png: bytes) -> int:
    """How many distinct byte values the decoded image data holds (a blank page has a handful)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data, at = b"", 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        if kind == b"IDAT":
            data += png[at + 8 : at + 8 + length]
        at += 12 + length
    return len(set(zlib.decompress(data)))


def test_the_page_shows_what_the_api_reports_and_updates_while_a_stream_runs(browser, monkeypatch, tmp_path):
    with Emulator(api_key=KEY, record_dir=tmp_path) as emulator, Receiver(tmp_path / "rx") as receiver:
        monkeypatch.setenv("TELNYX_BASE_URL", emulator.base_url)
        call = emulator.create_call(duration_s=30)
        page = Page(browser)
        try:
            page.open(emulator.ui_url)
            page.wait_for(f'document.querySelector(\'[data-call="{call}"][data-state="answered"]\')')
            script.main({"apiKey": KEY}, call, {"stream_url": receiver.url, "stream_track": "both_tracks"})
            page.wait_for(f'document.querySelector(\'[data-call="{call}"] [data-state="streaming"]\')')
            page.wait_for(f"document.querySelectorAll('[data-call=\"{call}\"] .frames').length === 2")
            first = frames_shown(page, call)
            reported = api(emulator, f"/_emulator/calls/{call}")["streams"][0]["frames_sent"]
            assert set(first) == {"inbound", "outbound"}
            for track in first:  # what the page shows, the API reported before: never ahead of it
                assert 0 <= first[track] <= reported[track], (first, reported)
            png = base64_png(page)
            (tmp_path / "streaming.png").write_bytes(png)
            assert len(png) > 5000 and png_pixels_vary(png) > 20
            # it updates: the page's own counts grow by a second of frames (50 a second), waited for
            grown = " && ".join(
                f'Number(document.querySelector(\'[data-call="{call}"] [data-track="{t}"] .frames\').textContent)'
                f" >= {first[t] + 50}"
                for t in first
            )
            page.wait_for(grown, timeout=30)
            # live levels: a bar moves (the test tones pause 50 ms in 300: a moment can be silent)
            page.wait_for("[...document.querySelectorAll('[data-level] > span')].some(s => s.style.width !== '0%')")
            # the buttons: hang up ends the call and its stream, and the page says why; a new call appears
            page.js(f"document.querySelector('[data-hangup=\"{call}\"]').click()")
            page.wait_for(f'document.querySelector(\'[data-call="{call}"][data-state="ended"]\')')
            assert api(emulator, f"/_emulator/calls/{call}")["state"] == "ended"
            ended = page.wait_for(f"document.querySelector('[data-call=\"{call}\"] .ended-why')?.textContent")
            assert ended == "(hung up from the emulator (the page, or /_emulator/calls/<id>/hangup))"
            before = len(api(emulator, "/_emulator/state")["calls"])
            page.js("document.querySelector('#new-call').click()")
            page.wait_for(f"document.querySelectorAll('[data-call]').length === {before + 1}")
            assert len(api(emulator, "/_emulator/state")["calls"]) == before + 1
            page.js(
                "document.querySelector('#fault-kind').value = 'status'; document.querySelector('#queue-fault').click()"
            )
            said = page.wait_for("document.querySelector('#message.ok')?.textContent")  # the POST's answer
            assert said == "queued 1 fault: the next API request gets it"
            assert len(emulator.backend.faults["*"]) == 1
            # the webhooks sent are listed under their headers (the hang-up sent call.hangup, not delivered)
            assert page.wait_for("document.querySelectorAll('[data-webhook]').length") >= 1
            headers = page.js("[...document.querySelectorAll('#webhooks th')].map(th => th.textContent)")
            assert headers == ["sent at", "event", "call_control_id", "delivered"]
        finally:
            page.close()


async def speak_into_a_one_way_stream(report, frame, ws):
    """A bot that speaks on start (3 frames of 20 ms), whatever the stream's settings."""
    if frame["event"] == "start":
        for _ in range(3):
            await ws.send(
                json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\x7f" * 160).decode()}})
            )


def test_the_page_plays_what_a_bot_said_and_says_why_a_stream_failed(browser, monkeypatch, tmp_path):
    from stream_server import TalkBack

    bot = TalkBack(seconds=1.0)
    with (
        Emulator(api_key=KEY) as emulator,
        Receiver(tmp_path / "rx", on_frame=bot) as receiver,
        Receiver(tmp_path / "unheard", on_frame=speak_into_a_one_way_stream) as one_way,
    ):
        monkeypatch.setenv("TELNYX_BASE_URL", emulator.base_url)
        talking = emulator.create_call(duration_s=30, listen_s=5)
        nobody = emulator.create_call(duration_s=30)
        unheard = emulator.create_call(duration_s=30)
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens on it
        page = Page(browser)
        try:
            page.open(emulator.ui_url)
            body = {
                "stream_url": receiver.url,
                "stream_bidirectional_mode": "rtp",
                "stream_bidirectional_codec": "PCMU",
            }
            script.main({"apiKey": KEY}, talking, body)
            script.main({"apiKey": KEY}, nobody, {"stream_url": f"ws://127.0.0.1:{port}"})
            script.main({"apiKey": KEY}, unheard, {"stream_url": one_way.url})  # no stream_bidirectional_mode
            page.wait_for(f'document.querySelector(\'[data-call="{talking}"] [data-track="back"] audio\')')
            played = page.js(f"document.querySelector('[data-call=\"{talking}\"] .played').textContent")
            assert int(played) > 0
            failure = page.wait_for(f"document.querySelector('[data-call=\"{nobody}\"] [data-failure]')?.textContent")
            assert failure == (
                "failed: connection_failed (nobody listens on stream_url: is your stream server running, "
                "and reachable from Telnyx?)"
            )
            # what Telnyx would do with the one-way stream's audio: the API's words, on the page, once
            warning = f"document.querySelector('[data-call=\"{unheard}\"] [data-warning]')?.textContent"
            page.wait_for(f"({warning} ?? '').startsWith('your server sent 3 media frames')")
            assert page.js(warning) == api(emulator, f"/_emulator/calls/{unheard}")["streams"][0]["warnings"][0]
            assert page.js(f"document.querySelectorAll('[data-call=\"{unheard}\"] [data-warning]').length") == 1
            assert page.js(f"document.querySelectorAll('[data-call=\"{talking}\"] [data-warning]').length") == 0
            with urllib.request.urlopen(emulator.ui_url.replace("/_emulator/ui", "/favicon.ico"), timeout=5) as icon:
                assert icon.headers["Content-Type"] == "image/png" and icon.read().startswith(b"\x89PNG")
        finally:
            page.close()


def test_new_call_on_the_page_listens_first_as_the_command_lines_calls(browser, monkeypatch, tmp_path):
    """The page's "New call" gets python -m emulator's own options (here its default --listen, 1.5 s): the
    caller is silent 1.5 s, then talks, exactly as on the call the command line made."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--quiet", "--fast", "--duration", "1"],
        cwd=Path(script.__file__).parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        monkeypatch.setenv("TELNYX_BASE_URL", ready["base_url"])
        page = Page(browser)
        try:
            page.open(ready["ui_url"])
            page.js("document.querySelector('#new-call').click()")
            page.wait_for("document.querySelectorAll('[data-call]').length === 2")
        finally:
            page.close()
        with urllib.request.urlopen(ready["ui_url"].replace("/ui", "/state"), timeout=5) as answer:
            calls = [c["call_control_id"] for c in json.loads(answer.read())["calls"]]
        (from_the_page,) = set(calls) - {ready["call_control_id"]}
        heard = {}
        with Receiver(tmp_path / "rx") as receiver:
            for index, call in enumerate([ready["call_control_id"], from_the_page]):
                script.main({"apiKey": ready["api_key"]}, call, {"stream_url": receiver.url})
                heard[call] = receiver.wait(index + 1, timeout=30)[index].samples("inbound")
    finally:
        process.terminate()
        process.wait(10)
    listened = next(i for i, sample in enumerate(heard[from_the_page]) if sample) / 8000
    print(f"\nthe page's call: the caller listened {listened:.2f} s, then talked")
    assert 1.5 <= listened < 1.6  # --listen's 1.5 s of silence, then the first tone (which starts at 0)
    assert heard[from_the_page] == heard[ready["call_control_id"]]  # the same caller as the command line's


def base64_png(page: Page) -> bytes:
    return base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])


def gap_p99(receiver: Receiver, index: int) -> float:
    report = receiver.wait(index + 1, timeout=30)[index]
    gaps = sorted(report.gaps_ms("inbound"))
    return gaps[int(len(gaps) * 0.99)]


def test_the_page_does_not_slow_the_media(browser, monkeypatch, tmp_path):
    with Emulator(api_key=KEY) as emulator, Receiver(tmp_path / "rx") as receiver:
        monkeypatch.setenv("TELNYX_BASE_URL", emulator.base_url)
        alone = emulator.create_call(duration_s=2)
        script.main({"apiKey": KEY}, alone, {"stream_url": receiver.url})
        without = gap_p99(receiver, 0)
        page = Page(browser)
        try:
            page.open(emulator.ui_url)
            watched = emulator.create_call(duration_s=2)
            script.main({"apiKey": KEY}, watched, {"stream_url": receiver.url})
            page.wait_for(f'document.querySelector(\'[data-call="{watched}"] [data-state="streaming"]\')')
            with_page = gap_p99(receiver, 1)
        finally:
            page.close()
    print(f"\nframe gap p99: {without:.2f} ms alone, {with_page:.2f} ms with the page open")
    assert with_page <= max(without * 1.5, without + 5), (without, with_page)


def test_the_ui_url_is_in_the_json_line_and_the_page_is_served(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--quiet"],
        cwd=Path(script.__file__).parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        assert ready["ui_url"].endswith("/_emulator/ui")
        with urllib.request.urlopen(ready["ui_url"], timeout=5) as page:
            assert page.headers["Content-Type"] == "text/html; charset=utf-8"
            assert page.read().startswith(b"<!doctype html>")
    finally:
        process.terminate()
        process.wait(10)
