"""The official telnyx SDK's client, warm: sequential calls in one process (./dev bench's SDK venv).

Usage: official_sdk_warm.py BODY_JSON (TELNYX_BASE_URL, TELNYX_API_KEY set). Reads call ids, one a line,
and answers each with the seconds its call took, one a line, so ./dev bench can run it in blocks
interleaved with its other variants; ends at an empty line or the end of its input.
"""

import json
import os
import sys
import time

import telnyx  # type: ignore[import-not-found]  # the SDK venv only

body = json.loads(sys.argv[1])
client = telnyx.Telnyx(api_key=os.environ["TELNYX_API_KEY"], base_url=os.environ["TELNYX_BASE_URL"])
for line in sys.stdin:
    call_control_id = line.strip()
    if not call_control_id:
        break
    began = time.perf_counter()
    client.calls.actions.start_streaming(call_control_id, **body)
    print(time.perf_counter() - began, flush=True)
