"""Floor: bare requests plus building a jsonschema validator for the body and validating it.

What the script cannot go below while jsonschema stays its validator of record.
"""

import json
import sys

import jsonschema

schema = {"type": "object", "properties": {"stream_url": {"type": "string"}, "stream_track": {"enum": ["both_tracks"]}}}
jsonschema.Draft202012Validator(schema).validate(json.loads(sys.argv[1]))

import bare_requests  # type: ignore[import-not-found]  # noqa: E402, F401 - then the bare POST (it runs on import)
