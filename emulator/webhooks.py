"""streaming.* webhooks, POSTed the way Telnyx does (envelope, not signed), off the caller's thread."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any


class Sender:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []  # every event, delivered or not (for tests)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emulator-webhook")

    def send(self, url: str | None, event_type: str, payload: dict[str, Any]) -> None:
        event = {
            "data": {
                "record_type": "event",
                "event_type": event_type,
                "id": str(uuid.uuid4()),
                "occurred_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "payload": payload,
            },
            "meta": {"attempt": 1, "delivered_to": url},
        }
        with self._lock:
            self.sent.append(event)
        if url:
            self._pool.submit(self._post, url, event)

    def events(self, call_control_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.sent if call_control_id in (None, e["data"]["payload"]["call_control_id"])]

    @staticmethod
    def _post(url: str, event: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - the user's own webhook URL
            url,
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "telnyx-emulator-webhooks"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                answer.read()
        except OSError:
            pass  # a webhook receiver that is down must not disturb the call

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
