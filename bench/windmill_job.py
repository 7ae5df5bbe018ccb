"""A cold Windmill job: script.py written fresh into a new job folder, imported from there (compiled,
no bytecode cache, as every job's module is) and main(**args) called, as Windmill's Python wrapper
does. Usage: windmill_job.py BODY_JSON CALL_CONTROL_ID (TELNYX_BASE_URL, TELNYX_API_KEY set)."""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True
folder = Path(tempfile.mkdtemp(prefix="windmill-job-"))
shutil.copyfile(Path(__file__).resolve().parent.parent / "script.py", folder / "streaming_start.py")
sys.path.insert(0, str(folder))
try:
    from streaming_start import main  # type: ignore[import-not-found]

    args = {"auth": {"apiKey": os.environ["TELNYX_API_KEY"]}, "call_control_id": sys.argv[2]}
    print(json.dumps(main(body=json.loads(sys.argv[1]), **args), separators=(",", ":"), default=str))
finally:
    shutil.rmtree(folder, ignore_errors=True)
