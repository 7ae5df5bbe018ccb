"""Telnyx API errors as the emulator answers them: one class per error, with its status and code.

Codes and titles follow what we know of Telnyx (tests/reference/README.md names the sources). Where
the real HTTP status is NOT verified (90015, 90034, 10011, invalid body) the emulator answers 422
or 429 as documented there; the script does not depend on those statuses.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    status = 422
    code = "10015"  # NOT verified: the code Telnyx uses for an invalid parameter
    title = "Invalid parameter"

    def __init__(self, detail: str, pointer: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "title": self.title, "detail": self.detail}
        if self.pointer:
            error["source"] = {"pointer": self.pointer}
        return {"errors": [error]}


class Unauthorized(APIError):
    status, code, title = 401, "10009", "Authentication failed"


class CallNotFound(APIError):
    status, code, title = 422, "90015", "Invalid Call Control ID"


class CallEnded(APIError):
    status, code, title = 422, "90018", "Call has already ended"


class CallNotAnswered(APIError):
    status, code, title = 422, "90034", "Call not answered yet"


class CallAlreadyAnswered(APIError):
    # NOT verified: the status and code Telnyx gives an answer command on a call already answered (the
    # emulator's generic 422 and code); the shipped flow never depends on them.
    title = "Call has already been answered"


class NotAnswerable(APIError):
    # NOT verified, as above: answering an outgoing call (its callee answers it)
    title = "Call cannot be answered"


class MediaStreamingUsed(APIError):
    # Telnyx's error list: 90045 "Media Streaming is used", "This command can't be issued when media
    # streaming is used"; streaming_start's spec lists it among its errors. That a second start on a
    # streaming call is what answers it is NOT verified: it is the likely trigger, and the safe one to test.
    status, code, title = 422, "90045", "Media Streaming is used"


class InvalidBody(APIError):
    pass


class NotFound(APIError):
    status, code, title = 404, "10005", "Resource not found"
