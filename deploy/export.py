"""Add this project's Windmill items to a workspace folder, touching nothing else (dev-only).

    python -m deploy.export DIR      (or ./dev windmill-export DIR)

DIR is a new folder or one you already sync with windmill-cli. Only these files are written (the
layout `wmill sync pull` uses, windmill-cli 1.819):
  telnyx.resource-type.yaml                the `telnyx` resource type (resource types live at the root)
  f/telnyx/folder.meta.yaml                the folder (only when DIR has none: yours is never replaced)
  f/telnyx/streaming_start.py              script.py, unchanged
  f/telnyx/streaming_start.script.yaml     summary, description, kind, the full form (script.schema.json)
                                           and `lock: '!inline f/telnyx/streaming_start.script.lock'`
  f/telnyx/streaming_start.script.lock     pinned requirements (deploy/streaming_start.script.lock)
  f/telnyx/start_stream_on_answer.flow/    the flow a Telnyx webhook runs (deploy/start_stream_on_answer.flow):
                                           flow.yaml (only when DIR has none or ours: your settings are kept),
                                           on_call_event.py and on_call_event.lock (its one step, which
                                           imports f/telnyx/streaming_start: push the script first)
`wmill.yaml` is never written: the per-item push commands the README gives do not need one, and a
synced folder's own settings stay as they are. When that wmill.yaml's `includes`/`excludes` would
keep these files out of the user's own `wmill sync push`, the export says what to add.

It then prints the steps that follow, in order (README, "Windmill in five minutes"): log in, the
resource, flow.yaml's settings, the per-item push commands (never `wmill sync push` from a folder that
holds only these files: sync push deletes every remote item missing locally), the webhook token and URL.
JSON is valid YAML: the .yaml files are written as JSON, which windmill-cli's YAML parser reads.
"""

from __future__ import annotations

import json
import re
import shlex
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
# The folder's metadata: empty on purpose. windmill-cli's `folder push` creates the folder from it
# when it is missing and compares it key by key with a folder that exists (isSuperset): with no keys
# there is nothing to update, so the owners, permissions and summary of an existing f/telnyx stay.
FOLDER_META = "{}\n"
FLOW = "start_stream_on_answer"
FLOW_DIR = ROOT / "deploy" / f"{FLOW}.flow"
# What follows the export, as main() prints it (README, "Windmill in five minutes", says the same)
LOGIN = "wmill workspace add my-workspace <workspace id> https://<your windmill>/ --token <token>"
TYPE_PUSH = "wmill resource-type push telnyx.resource-type.yaml telnyx"  # before the resource: it has this type
PUSH_COMMANDS = [
    "wmill folder push telnyx",
    f"wmill script push {FOLDER}/{NAME}.py",
    f"wmill flow push {FOLDER}/{FLOW}.flow {FOLDER}/{FLOW}",
]
WEBHOOK_URL = (
    f"https://<your windmill>/api/w/<workspace id>/jobs/run/f/{FOLDER}/{FLOW}?token=<token>&raw=true"
    "&include_header=telnyx-signature-ed25519,telnyx-timestamp"
)
# What `wmill script push` 1.819 prints with no wmill.yaml and no `wmill generate-metadata` run, word for word
# up to here: harmless, as the export wrote the script's form and lock
CLI_NOTES = ("No wmill.yaml found", "No metadata generated yet")


def files() -> dict[str, str]:
    """Each file this project owns in a workspace folder -> its text."""
    metadata = {
        "summary": SUMMARY,
        "description": DESCRIPTION,
        "lock": f"!inline {FOLDER}/{NAME}.script.lock",
        "kind": "script",
        "schema": json.loads((ROOT / "script.schema.json").read_text()),
    }
    resource_type = json.loads((ROOT / "resource_types" / "telnyx.resource-type.json").read_text())
    return {
        "telnyx.resource-type.yaml": json.dumps(resource_type, indent=2, ensure_ascii=False) + "\n",
        f"{FOLDER}/{NAME}.py": (ROOT / "script.py").read_text(encoding="utf-8"),
        f"{FOLDER}/{NAME}.script.yaml": json.dumps(metadata, indent=2, ensure_ascii=False) + "\n",
        f"{FOLDER}/{NAME}.script.lock": (ROOT / "deploy" / f"{NAME}.script.lock").read_text(),
        **{f"{FOLDER}/{FLOW}.flow/{p.name}": p.read_text(encoding="utf-8") for p in sorted(FLOW_DIR.iterdir())},
    }


def export(target: Path) -> dict[str, str]:
    """Write this project's files into ``target``; return each path -> "added", "updated" or "unchanged"."""
    done: dict[str, str] = {}
    wanted = {**files(), f"{FOLDER}/folder.meta.yaml": FOLDER_META}
    # Files the user edits: the folder's metadata (owners, permissions) and the flow's settings. A
    # copy that differs from ours is theirs and is kept (the note in main() says how to update it).
    for relative in (f"{FOLDER}/folder.meta.yaml", f"{FOLDER}/{FLOW}.flow/flow.yaml"):
        path = target / relative
        if path.exists() and path.read_text(encoding="utf-8") != wanted[relative]:
            done[relative] = "kept (yours)"
            del wanted[relative]
    for relative, text in wanted.items():
        path = target / relative
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            done[relative] = "unchanged"
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        done[relative] = "added" if old is None else "updated"
    return done


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A windmill-cli include/exclude glob (minimatch: ** any path, * one segment) as a regex."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    regex = "".join(
        ".*" if p.startswith("**") else "[^/]*" if p == "*" else "[^/]" if p == "?" else re.escape(p) for p in parts
    )
    return re.compile(regex + r"\Z")


def left_out(target: Path, paths: list[str]) -> list[str]:
    """The paths a `wmill sync push` from ``target`` would not carry, as its wmill.yaml says."""
    config_path = target / "wmill.yaml"
    if not config_path.is_file():
        return []
    import yaml  # dev-only (requirements-dev.txt): the user's wmill.yaml is real YAML

    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    includes = config.get("includes") or ["f/**"]  # windmill-cli's default
    excludes = config.get("excludes") or []
    matches = lambda path, globs: any(glob_regex(g).match(path) for g in globs)  # noqa: E731
    return [
        p
        for p in paths
        if p.startswith("f/") and (not matches(p, includes) or matches(p, excludes))  # resource types: their own rule
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m deploy.export DIR   (./dev windmill-export DIR)", file=sys.stderr)
        return 2
    target = Path(argv[0]).expanduser()
    done = export(target)
    for path, what in done.items():
        print(f"{what:>12}  {target / path}")
    if done.get(f"{FOLDER}/{FLOW}.flow/flow.yaml") == "kept (yours)":
        print(
            f"note: {FOLDER}/{FLOW}.flow/flow.yaml holds your settings and was kept. This version may differ "
            f"beyond the settings (its route branch runs a job only for the events that need one, its defaults "
            f"serve a voice bot): to take it, move yours away, export again, then copy your settings (auth, "
            f"public_key, stream_url, voice_bot, stream_options, answer_incoming, stream_outgoing)."
        )
    outside = left_out(target, [p for p in done if p.startswith("f/")])
    if outside:
        print(
            f"\nnote: {target / 'wmill.yaml'} keeps {', '.join(outside)} out of `wmill sync push`: add "
            f"'{FOLDER}/**' to its includes (and remove what excludes them), or deploy with the commands below."
        )
    print(next_steps(target.absolute()))
    return 0


def next_steps(target: Path) -> str:
    """The steps after the export, in the order they must happen."""
    folder = shlex.quote(str(target))
    push = "\n".join(f"      {command}" for command in PUSH_COMMANDS)
    return f"""
Next, in this order:
 1. Log in once: install windmill-cli (npm install -g windmill-cli), make a token (Windmill > your name >
    Account settings > Tokens), then run this (with no terminal, wmill workspace add needs --token):
      {LOGIN}
 2. Push the resource type, then create your telnyx resource holding your API key (Windmill > Resources >
    Add a resource > telnyx; the key: portal.telnyx.com > Account settings > Keys):
      cd {folder}
      {TYPE_PUSH}
 3. Fill in the flow's settings in {target / FOLDER / (FLOW + ".flow") / "flow.yaml"}:
    public_key (portal.telnyx.com > Keys & Credentials > Public Key), auth ($res: and your resource's
    path, e.g. $res:u/you/telnyx) and stream_url (your WebSocket server).
 4. Push the folder, the script and the flow. Each command creates or updates one item and touches
    nothing else (never `wmill sync push` from here: it deletes every item this folder lacks):
{push}
    windmill-cli then prints "{CLI_NOTES[0]}" and "{CLI_NOTES[1]} ... Run 'wmill
    generate-metadata'": both are harmless here (the export wrote the script's form and lock), so run
    neither wmill init nor wmill generate-metadata. It also writes wmill-lock.yaml in this folder.
 5. Make a webhook token: the flow's Triggers tab > Webhooks (it runs this flow and nothing else).
 6. Give your Call Control application this webhook URL, on one line (jobs/run/f/ runs a flow, and
    {FOLDER}/{FLOW} is its path: hence f/f/):
      {WEBHOOK_URL}"""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
