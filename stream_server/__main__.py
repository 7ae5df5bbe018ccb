"""``python -m stream_server``: the example stream server on 127.0.0.1 (see __init__.py)."""

import sys

from . import main

sys.exit(main())
