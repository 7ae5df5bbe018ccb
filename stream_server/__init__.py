"""YOUR side, not Telnyx's: an example stream server (stream_server/server.py), ``python -m stream_server``."""

from .server import Receiver, StreamReport, TalkBack, main

__all__ = ["Receiver", "StreamReport", "TalkBack", "main"]
