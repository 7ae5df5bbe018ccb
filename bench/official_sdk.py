"""The official telnyx SDK doing the same call (pip install -r bench/requirements-sdk.txt)."""

import json
import os
import sys

import telnyx  # type: ignore[import-not-found]  # optional: bench/requirements-sdk.txt

body, call_control_id = json.loads(sys.argv[1]), sys.argv[2]
client = telnyx.Telnyx(api_key=os.environ["TELNYX_API_KEY"], base_url=os.environ["TELNYX_BASE_URL"])
result = client.calls.actions.start_streaming(call_control_id, **body)
print(json.dumps(result.to_dict()))
