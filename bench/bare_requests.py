"""Baseline: the same POST with bare requests, no validation, no retries (what a minimal port does)."""

import json
import os
import sys

import requests

body, call_control_id = json.loads(sys.argv[1]), sys.argv[2]
response = requests.post(
    f"{os.environ['TELNYX_BASE_URL']}/calls/{call_control_id}/actions/streaming_start",
    json=body,
    headers={"Authorization": f"Bearer {os.environ['TELNYX_API_KEY']}"},
    timeout=10,
)
if not response.ok:
    sys.exit(f"{response.status_code} {response.text}")
print(json.dumps(response.json()))
