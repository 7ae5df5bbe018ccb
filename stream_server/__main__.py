"""``python -m stream_server``: the example stream server on 127.0.0.1 (stream_server/server.py)."""

import sys

from .server import main

sys.exit(main())
