"""A local Telnyx Call Control emulator that really streams audio (dev-only; script.py never imports it).

    with Emulator(fast=True) as emu:
        call_id = emu.create_call()
        # point the script at emu.base_url with emu.api_key, then look at emu.call(call_id)

Layout, as in moto: models.py (state, no HTTP), server.py (routes and HTTP), exceptions.py (one class
per Telnyx error), media.py (the WebSocket stream), playback.py (what the server sends, played),
codec_check.py (does it fit stream_bidirectional_codec), admin.py (the emulator's own routes and page),
webhooks.py; the codecs are ../audio_codecs.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .media import MediaRunner
from .models import Backend, Call, Fault, Stream
from .server import Server
from .webhooks import Sender

__all__ = ["DEFAULT_API_KEY", "Call", "Emulator", "Fault", "Stream"]

DEFAULT_API_KEY = "KEY_EMULATOR_0123456789"  # the emulator's key; not a real Telnyx key


class Emulator:
    """The Call Control API on 127.0.0.1 (``base_url``), with media streaming unless ``media=False``."""

    def __init__(
        self,
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        media: bool = True,
        fast: bool = False,
        record_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        keep_alive: bool = True,
    ) -> None:
        self.webhooks = Sender()
        self.backend = Backend(api_key, webhooks=self.webhooks)
        self.server = Server((host, port), self.backend)  # first: a port in use raises before any thread starts
        self.media = MediaRunner(self.backend, fast=fast, record_dir=record_dir) if media else None
        self.backend.media = self.media
        self.server.keep_alive = keep_alive
        self.api_key = api_key
        self.host = host
        self._thread = threading.Thread(target=self.server.serve_forever, name="emulator-http", daemon=True)

    @property
    def connections_accepted(self) -> int:
        return self.server.connections_accepted

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.server.server_port}/v2"

    @property
    def ui_url(self) -> str:
        """The page that shows calls, streams, levels, marks, webhooks, and has buttons (emulator/ui.html)."""
        return f"http://{self.host}:{self.server.server_port}/_emulator/ui"

    def start(self) -> Emulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.media is not None:
            self.media.close()
        self.server.shutdown()
        self.server.server_close()
        self.webhooks.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- conveniences for tests and the demo (the same as the HTTP admin routes) -----------
    def create_call(self, **options: Any) -> str:
        return self.backend.create_call(**options).call_control_id

    def ring(self, **options: Any) -> str:
        """A new call, ringing: call.initiated goes to ``webhook_url``. ``direction="incoming"`` (the
        default) waits for your application's answer command; ``"outgoing"`` for ``pick_up``."""
        return self.backend.ring(**options).call_control_id

    def pick_up(self, call_control_id: str) -> None:
        """The callee of an outgoing call answers."""
        self.backend.pick_up(call_control_id)

    def hangup(self, call_control_id: str) -> None:
        self.backend.hangup(call_control_id)

    def narrate(self, say: Any) -> None:
        """Tell ``say`` (a callable taking a line) what happens: requests, streams, webhooks."""
        self.backend.narrate = say
        self.webhooks.say = self.backend.say

    @property
    def webhook_public_key(self) -> str:
        """The public key the emulator's webhook signatures verify with (base64, as Telnyx's portal shows it)."""
        return self.webhooks.public_key

    def call(self, call_control_id: str) -> Call:
        return self.backend.call(call_control_id)

    def add_faults(self, faults: list[dict[str, Any]], call_control_id: str | None = None) -> None:
        self.backend.add_faults(faults, call_control_id)

    def wait_streams(self, call_control_id: str, timeout: float = 30.0) -> list[Stream]:
        """Wait until every stream of the call has ended; return them."""
        streams = self.call(call_control_id).streams
        for stream in streams:
            if self.media is not None and not stream.done.wait(timeout):
                raise TimeoutError(f"stream {stream.stream_id} still running after {timeout} s")
        return streams
