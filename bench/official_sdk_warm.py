"""The official telnyx SDK's client, warm: sequential calls in one process (./dev bench's SDK venv).

Usage: official_sdk_warm.py BODY_JSON < call ids, one a line (TELNYX_BASE_URL, TELNYX_API_KEY set).
Prints one JSON line: the seconds of each call after 20 not counted.
"""

import json
import os
import sys
import time

import telnyx  # type: ignore[import-not-found]  # the SDK venv only

body = json.loads(sys.argv[1])
calls = sys.stdin.read().split()
client = telnyx.Telnyx(api_key=os.environ["TELNYX_API_KEY"], base_url=os.environ["TELNYX_BASE_URL"])
timings = []
for index, call_control_id in enumerate(calls):
    began = time.perf_counter()
    client.calls.actions.start_streaming(call_control_id, **body)
    if index >= 20:  # the connection, the client's caches: not counted
        timings.append(time.perf_counter() - began)
print(json.dumps(timings))
