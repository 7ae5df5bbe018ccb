"""The emulator's own routes (``/_emulator/...``), apart from Telnyx's API: create, pick up and hang up
calls, queue faults, read the state, the requests and the webhooks, the page (ui.html) and its icon."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import audio_codecs as audio

from .exceptions import InvalidBody, NotFound
from .models import Backend


class AdminRoutes:
    """Mixed into the HTTP handler (server.Handler); ``server.backend`` is the emulator's state."""

    server: Any  # the HTTP server, with .backend

    ADMIN_ROUTES: ClassVar[list[tuple[str, re.Pattern, str]]] = [
        ("POST", re.compile(r"^/_emulator/calls$"), "admin_create_call"),
        ("POST", re.compile(r"^/_emulator/calls/([^/]+)/pickup$"), "admin_pickup"),
        ("GET", re.compile(r"^/favicon\.ico$"), "admin_icon"),
        ("POST", re.compile(r"^/_emulator/calls/([^/]+)/hangup$"), "admin_hangup"),
        ("GET", re.compile(r"^/_emulator/state$"), "admin_state"),
        ("GET", re.compile(r"^/_emulator/ui$"), "admin_ui"),
        ("GET", re.compile(r"^/_emulator/calls/([^/]+)$"), "admin_call"),
        ("POST", re.compile(r"^/_emulator/faults$"), "admin_faults"),
        ("GET", re.compile(r"^/_emulator/requests$"), "admin_requests"),
        ("GET", re.compile(r"^/_emulator/events$"), "admin_events"),
        ("GET", re.compile(r"^/_emulator/streams/([^/]+)/played\.wav$"), "admin_played"),
    ]

    @property
    def backend(self) -> Backend:
        return self.server.backend

    def admin_create_call(self, body: Any) -> dict:
        """A new call. With ``direction``: ``incoming`` rings (call.initiated, parked) until your
        application answers it, or rings out after ``ring_timeout_s``; ``outgoing`` is answered by the
        callee (``POST /_emulator/calls/{id}/pickup``, or ``pickup_after_s``). Without: a call already
        answered, ready to stream (for the command line and the demo). Options not given are those of
        ``python -m emulator``'s own calls (``call_defaults``): a call from the page listens first too."""
        options = {**self.backend.call_defaults, **dict(body or {})}  # as python -m emulator's own calls
        known = {
            "codec",
            "audio",
            "webhook_url",
            "duration_s",
            "state",
            "direction",
            "ring_timeout_s",
            "pickup_after_s",
            "listen_s",
        }
        unknown = set(options) - known
        if unknown:
            raise InvalidBody(f"unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        if options.get("codec", "PCMU") not in audio.SAMPLE_RATES:
            raise InvalidBody(f"codec must be one of {sorted(audio.SAMPLE_RATES)}", "/codec")
        if options.pop("state", None) == "ringing":  # the older spelling of an incoming call
            options.setdefault("direction", "incoming")
        backend = self.backend
        if "direction" in options:
            call = backend.ring(**options)
        else:
            call = backend.create_call(
                **{k: v for k, v in options.items() if k not in ("ring_timeout_s", "pickup_after_s")}
            )
        backend.say(f"call {call.call_control_id} created ({call.direction}, {call.state})")
        return {"call_control_id": call.call_control_id}

    def admin_hangup(self, call_id: str, body: Any) -> dict:
        self.backend.hangup(call_id, why="hung up from the emulator (the page, or /_emulator/calls/<id>/hangup)")
        return {"call_control_id": call_id, "state": "ended"}

    def admin_state(self, body: Any) -> dict:
        """Everything the page shows: calls with their streams, and the webhooks sent (newest last)."""
        backend = self.backend
        with backend.lock:
            calls = [call.summary() for call in backend.calls.values()]
        sender = backend.webhooks
        deliveries = {d["id"]: d for d in sender.deliveries} if sender else {}
        webhooks = [
            {
                "event_type": e["data"]["event_type"],
                "id": e["data"]["id"],
                "call_control_id": e["data"]["payload"].get("call_control_id"),
                "occurred_at": e["data"]["occurred_at"],
                "url": e["meta"]["delivered_to"],
                "delivered": deliveries.get(e["data"]["id"], {}).get("status"),
            }
            for e in (sender.events() if sender else [])[-50:]
        ]
        return {"calls": calls, "webhooks": webhooks}

    def admin_ui(self, body: Any) -> bytes:
        return (Path(__file__).parent / "ui.html").read_bytes()

    def admin_pickup(self, call_id: str, body: Any) -> dict:
        """The callee of an outgoing call answers (an incoming call is answered by Telnyx's answer command)."""
        return {"call_control_id": call_id, "state": self.backend.pick_up(call_id).state}

    def admin_icon(self, body: Any) -> bytes:
        return ICON

    def admin_call(self, call_id: str, body: Any) -> dict:
        return self.backend.call(call_id).summary()

    def admin_faults(self, body: Any) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("faults"), list):
            raise InvalidBody('expected {"faults": [...], "call_control_id": optional}')
        self.backend.add_faults(body["faults"], body.get("call_control_id"))
        return {"queued": len(body["faults"])}

    def admin_requests(self, body: Any) -> dict:
        backend = self.backend
        with backend.lock:
            return {
                "requests": [
                    {
                        "method": r.method,
                        "path": r.path,
                        "headers": r.headers,
                        "body": r.body.decode("utf-8", "replace"),
                    }
                    for r in backend.requests
                ]
            }

    def admin_events(self, body: Any) -> dict:
        webhooks = self.backend.webhooks
        return {"events": webhooks.events() if webhooks else []}

    def admin_played(self, stream_id: str, body: Any) -> bytes:
        import io

        backend = self.backend
        with backend.lock:
            streams = [s for c in backend.calls.values() for s in c.streams if s.stream_id == stream_id]
        if not streams:
            raise NotFound(f"No stream {stream_id}.")
        stream = streams[0]
        buffer = io.BytesIO()
        audio.write_wav(buffer, stream.played, stream.played_rate)
        return buffer.getvalue()


# The page's icon (a 1x1 PNG): a browser asks for /favicon.ico on every page it opens
ICON = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cff09f0100050201fe2a8a1c5e0000000049454e44ae426082"
)
