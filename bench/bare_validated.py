"""Floor: bare requests plus building a jsonschema validator for the body and validating it.

What the script cannot go below while jsonschema stays its validator of record.
"""

import json
import os
import sys

import jsonschema
import requests

call_control_id, body = sys.argv[1], json.loads(sys.argv[2])
schema = {"type": "object", "properties": {"stream_url": {"type": "string"}, "stream_track": {"enum": ["both_tracks"]}}}
jsonschema.Draft202012Validator(schema).validate(body)
response = requests.post(
    f"{os.environ['TELNYX_BASE_URL']}/calls/{call_control_id}/actions/streaming_start",
    json=body,
    headers={"Authorization": f"Bearer {os.environ['TELNYX_API_KEY']}"},
    timeout=10,
)
if not response.ok:
    sys.exit(f"{response.status_code} {response.text}")
print(json.dumps(response.json()))
