"""Write what `wmill sync push` reads for this script and its resource type (dev-only).

    python -m deploy.export DIR      (or ./dev windmill-export DIR)

DIR becomes a Windmill workspace folder, as `wmill sync pull` lays one out (windmill-cli 1.819):
  wmill.yaml                                   sync settings (the defaults, YAML mode)
  telnyx.resource-type.yaml                    the `telnyx` resource type (resource types live at the root)
  f/telnyx/streaming_start.py                  script.py, unchanged
  f/telnyx/streaming_start.script.yaml         summary, description, kind, the full form (script.schema.json)
                                               and `lock: '!inline f/telnyx/streaming_start.script.lock'`
  f/telnyx/streaming_start.script.lock         pinned requirements (deploy/streaming_start.script.lock)
Then `cd DIR && wmill sync push` deploys it with the full form. JSON is valid YAML: the .yaml files
are written as JSON, which windmill-cli's YAML parser reads unchanged.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "f/telnyx"
NAME = "streaming_start"
SUMMARY = "Telnyx — Streaming start"
DESCRIPTION = (
    "Start streaming a live call's audio to your WebSocket server (Telnyx Call Control "
    "streaming_start): checks before sending, safe retries with one command_id, a deadline, clear errors."
)


def export(target: Path) -> list[Path]:
    """Write the workspace files into ``target``; return them."""
    script_dir = target / FOLDER
    script_dir.mkdir(parents=True, exist_ok=True)
    lock_path = f"{FOLDER}/{NAME}.script.lock"
    metadata = {
        "summary": SUMMARY,
        "description": DESCRIPTION,
        "lock": f"!inline {lock_path}",
        "kind": "script",
        "schema": json.loads((ROOT / "script.schema.json").read_text()),
    }
    resource_type = json.loads((ROOT / "resource_types" / "telnyx.resource-type.json").read_text())
    files = {
        target / "wmill.yaml": json.dumps({"defaultTs": "bun", "includes": ["f/**"], "excludes": []}, indent=2),
        target / "telnyx.resource-type.yaml": json.dumps(resource_type, indent=2, ensure_ascii=False),
        script_dir / f"{NAME}.script.yaml": json.dumps(metadata, indent=2, ensure_ascii=False),
        script_dir / f"{NAME}.script.lock": (ROOT / "deploy" / f"{NAME}.script.lock").read_text(),
    }
    for path, text in files.items():
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    shutil.copyfile(ROOT / "script.py", script_dir / f"{NAME}.py")
    return [*files, script_dir / f"{NAME}.py"]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m deploy.export DIR")
    for written in export(Path(sys.argv[1])):
        print(written)
