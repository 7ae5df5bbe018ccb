"""The README's deploy commands, run with the real windmill-cli (npm, pinned in tests/windmill) against
a local stand-in for Windmill's API (tests/windmill/standin.py): they create or update this project's
items only, send no delete and write to no other item, also in a workspace that holds other things."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import ROOT
from windmill.standin import StandIn, Workspace

WMILL = ROOT / "tests" / "windmill" / "node_modules" / ".bin" / "wmill"
FLOW = "f/telnyx/start_stream_on_answer"
OURS = {  # every write the deploy may send: to these items, nothing else
    ("POST", "/api/w/test/folders/create"),
    ("POST", "/api/w/test/folders/update/telnyx"),
    ("POST", "/api/w/test/resources/type/create"),
    ("POST", "/api/w/test/resources/type/update/telnyx"),
    ("POST", "/api/w/test/scripts/create"),
    ("POST", "/api/w/test/flows/create"),
    ("POST", "/api/w/test/flows/update/f/telnyx/start_stream_on_answer"),
}


def readme_commands() -> list[str]:
    """The deploy blocks of README.md (the two after its deploy-commands mark), as a user copies them."""
    text = (ROOT / "README.md").read_text()
    blocks = text.split("<!-- deploy-commands", 1)[1].split("```")[1:4:2]
    return [line.split("  #")[0].strip() for block in blocks for line in block.strip().splitlines() if line.strip()]


def deploy(folder: Path, api: StandIn) -> list[subprocess.CompletedProcess]:
    """Run the README's block in ``folder`` (its `~/my-workspace`), windmill-cli pointed at the stand-in."""
    if not WMILL.exists():
        pytest.fail("windmill-cli is not installed: run ./dev test (it runs npm ci in tests/windmill)")
    done = []
    for command in readme_commands():
        words = shlex.split(command.replace("~/my-workspace", str(folder)))
        if words[0] == "cd":
            assert Path(words[1]) == folder
            continue
        if words[:2] == ["./dev", "windmill-export"]:  # ./dev itself: test_the_dev_command_writes_the_same_files
            words = [sys.executable, "-m", "deploy.export", *words[2:]]
            cwd = ROOT
        else:
            assert words[0] == "wmill", command
            words = [str(WMILL), *words[1:], "--base-url", api.base_url, "--workspace", "test", "--token", "t0k3n"]
            words += ["--config-dir", str(folder.parent / "wmill-config")]
            cwd = folder
        run = subprocess.run(
            words, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"}
        )
        assert run.returncode == 0, f"{command}\n{run.stdout}\n{run.stderr}"
        done.append(run)
    return done


def test_the_readme_deploys_with_per_item_commands_only():
    commands = readme_commands()
    assert commands[0] == "./dev windmill-export ~/my-workspace" and commands[1] == "cd ~/my-workspace"
    assert all(c.startswith("wmill ") for c in commands[2:]) and len(commands) >= 5
    assert not [c for c in commands if "sync" in c.split()], "sync push deletes what the folder lacks"


def expected_script() -> dict:
    return {
        "content": (ROOT / "script.py").read_text(),
        "schema": json.loads((ROOT / "script.schema.json").read_text()),
        "lock": (ROOT / "deploy" / "streaming_start.script.lock").read_text(),
        "language": "python3",
        "kind": "script",
    }


def test_a_new_workspace_gets_the_folder_the_resource_type_and_the_script(tmp_path):
    folder = tmp_path / "my-workspace"
    with StandIn() as api:
        deploy(folder, api)
    assert not api.unknown, api.unknown
    assert set(api.writes()) <= OURS and not [r for r in api.requests if r.method == "DELETE"]
    ws = api.workspace
    assert set(ws.folders) == {"telnyx"} and ws.folders["telnyx"]["name"] == "telnyx"
    shipped = json.loads((ROOT / "resource_types" / "telnyx.resource-type.json").read_text())
    assert ws.resource_types == {"telnyx": {"name": "telnyx", **shipped}}
    assert list(ws.scripts) == ["f/telnyx/streaming_start"]
    script = ws.scripts["f/telnyx/streaming_start"]
    for key, value in expected_script().items():
        assert script[key] == value, key
    assert script["summary"].startswith("Telnyx") and script["description"]
    assert not (folder / "wmill.yaml").exists()  # the export writes none; the commands need none
    assert list(ws.flows) == [FLOW]
    flow = ws.flows[FLOW]
    assert flow["path"] == FLOW and flow["summary"].startswith("Telnyx")
    (step,) = scripts_of(flow["value"])  # one script step, wherever it sits: one job per webhook
    shipped = ROOT / "deploy" / "start_stream_on_answer.flow"
    assert step["content"] == (shipped / "on_call_event.py").read_text()  # !inline resolved by the CLI
    assert step["lock"] == (shipped / "on_call_event.lock").read_text()
    assert "from f.telnyx.streaming_start import" in step["content"]  # the deployed script, by path


def scripts_of(value) -> list[dict]:
    """Every rawscript step's value in a flow value, branches included."""
    if isinstance(value, dict):
        found = [value] if value.get("type") == "rawscript" else []
        return found + [s for v in value.values() for s in scripts_of(v)]
    if isinstance(value, list):
        return [s for v in value for s in scripts_of(v)]
    return []


def crowded_workspace() -> Workspace:
    """A workspace in use: other scripts, flows, resources, resource types, and an f/telnyx of its own."""
    return Workspace(
        folders={
            "telnyx": {"name": "telnyx", "owners": ["u/alice"], "extra_perms": {"g/ops": True}, "summary": "Ours"},
            "billing": {"name": "billing", "owners": ["u/bob"], "extra_perms": {}, "summary": None},
        },
        scripts={
            "f/telnyx/hangup": {"path": "f/telnyx/hangup", "content": "def main(): pass", "hash": "h1"},
            "f/billing/charge": {"path": "f/billing/charge", "content": "def main(): pass", "hash": "h2"},
            "u/alice/scratch": {"path": "u/alice/scratch", "content": "def main(): pass", "hash": "h3"},
            "f/telnyx/streaming_start": {
                "path": "f/telnyx/streaming_start",
                "content": "# an older version\ndef main(): pass",
                "hash": "old",
                "summary": "old",
                "description": "",
                "language": "python3",
                "kind": "script",
                "extra_perms": {"u/carol": False},
            },
        },
        flows={"f/billing/nightly": {"path": "f/billing/nightly", "summary": "", "value": {"modules": []}}},
        resource_types={
            "postgresql": {"name": "postgresql", "schema": {"type": "object"}, "description": "db"},
            "telnyx": {"name": "telnyx", "schema": {"type": "object", "properties": {}}, "description": "old"},
        },
        resources={"u/alice/telnyx": {"path": "u/alice/telnyx", "resource_type": "telnyx", "value": {"apiKey": "K"}}},
    )


def test_a_workspace_in_use_keeps_everything_but_our_items(tmp_path):
    folder = tmp_path / "my-workspace"
    # a folder the user already syncs: their settings, their scripts, their own f/telnyx files
    mine = {
        "wmill.yaml": "defaultTs: deno\nincludes:\n  - f/**\nskipVariables: true\n",
        "f/billing/charge.py": "def main(): pass\n",
        "f/telnyx/hangup.py": "def main(): pass\n",
        "f/telnyx/folder.meta.yaml": "summary: Ours\nowners:\n  - u/alice\nextra_perms:\n  g/ops: true\n",
    }
    for relative, text in mine.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    before = crowded_workspace()
    with StandIn(copy.deepcopy(before)) as api:
        deploy(folder, api)
        first = list(api.requests)
        deploy(folder, api)  # deploying again changes nothing else either
    assert not api.unknown, api.unknown
    assert not [r for r in api.requests if r.method == "DELETE"]
    assert set(api.writes()) <= OURS, api.writes()
    for request in api.requests:
        if request.method == "POST" and request.path.endswith("/scripts/create"):
            assert request.body["path"] == "f/telnyx/streaming_start"
        if request.method == "POST" and "/resources/type/" in request.path:
            assert request.body.get("name", "telnyx") == "telnyx"
    ws = api.workspace
    assert ws.folders == before.folders  # f/telnyx's owners, permissions and summary untouched
    assert {p: s for p, s in ws.scripts.items() if p != "f/telnyx/streaming_start"} == {
        p: s for p, s in before.scripts.items() if p != "f/telnyx/streaming_start"
    }
    assert {p: f for p, f in ws.flows.items() if p != FLOW} == before.flows and ws.resources == before.resources
    assert FLOW in ws.flows
    assert ws.resource_types["postgresql"] == before.resource_types["postgresql"]
    updated = ws.scripts["f/telnyx/streaming_start"]
    for key, value in expected_script().items():
        assert updated[key] == value, key
    assert updated["extra_perms"] == {} or "extra_perms" not in first[-1].body  # no permission call was made
    assert not [r for r in api.requests if "acl" in r.path or "perms" in r.path]
    for relative, text in mine.items():  # the user's files, byte for byte
        assert (folder / relative).read_text() == text, relative


def test_the_export_adds_only_its_files_and_says_what_wmill_yaml_lacks(tmp_path):
    (tmp_path / "f" / "mine").mkdir(parents=True)
    (tmp_path / "f" / "mine" / "job.py").write_text("def main(): pass\n")
    settings = "defaultTs: deno\nincludes:\n  - f/mine/**\nexcludes: []\nskipVariables: true\n"
    (tmp_path / "wmill.yaml").write_text(settings)
    done = subprocess.run(
        [sys.executable, "-m", "deploy.export", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "wmill.yaml").read_text() == settings
    assert (tmp_path / "f" / "mine" / "job.py").read_text() == "def main(): pass\n"
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        "f/mine/job.py",
        "f/telnyx/folder.meta.yaml",
        "f/telnyx/start_stream_on_answer.flow/flow.yaml",
        "f/telnyx/start_stream_on_answer.flow/on_call_event.lock",
        "f/telnyx/start_stream_on_answer.flow/on_call_event.py",
        "f/telnyx/streaming_start.py",
        "f/telnyx/streaming_start.script.lock",
        "f/telnyx/streaming_start.script.yaml",
        "telnyx.resource-type.yaml",
        "wmill.yaml",
    ]
    assert re.search(
        r"note: .*wmill\.yaml keeps f/telnyx/streaming_start\.py.* add 'f/telnyx/\*\*' to its includes", done.stdout
    )
    # with f/** included there is nothing to say
    (tmp_path / "wmill.yaml").write_text("includes:\n  - f/**\n")
    again = subprocess.run(
        [sys.executable, "-m", "deploy.export", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "note:" not in again.stdout and "unchanged" in again.stdout
    # an exclude that covers it is named too
    (tmp_path / "wmill.yaml").write_text("includes:\n  - f/**\nexcludes:\n  - f/telnyx/*.py\n")
    excluded = subprocess.run(
        [sys.executable, "-m", "deploy.export", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "keeps f/telnyx/streaming_start.py out" in excluded.stdout
    assert "streaming_start.script.yaml" not in excluded.stdout.split("note:")[1].split("add")[0]


# -- what ./dev windmill-export prints after the files: the next steps, in order --------------------


def export_steps(folder: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.export", str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\nNext, in this order:\n", 1)[1]


def printed_commands(steps: str) -> list[str]:
    """The command lines of the steps (indented 6, as a user copies them), in order."""
    return [line.strip() for line in steps.splitlines() if re.match(r" {6}(wmill|cd) ", line)]


def test_the_export_ends_with_the_steps_that_follow_in_order(tmp_path):
    steps = export_steps(tmp_path / "my-workspace")
    flat = " ".join(steps.split())
    order = [
        "wmill workspace add my-workspace <workspace id> https://<your windmill>/ --token <token>",  # log in
        "create your telnyx resource",
        f"{tmp_path}/my-workspace/f/telnyx/start_stream_on_answer.flow/flow.yaml",
        "public_key",
        "auth ($res:",
        "stream_url",
        "wmill folder push telnyx",
        "wmill flow push",
        "webhook token",
        f"/jobs/run/f/{FLOW}?token=<token>&raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp",
    ]
    at = [flat.find(words) for words in order]
    assert -1 not in at and at == sorted(at), dict(zip(order, at))
    assert "with no terminal, wmill workspace add needs --token" in flat
    # the resource has the telnyx type: the type's push is part of the resource's step, before flow.yaml
    assert flat.index("create your telnyx resource") < flat.index("wmill resource-type push") < flat.index("flow.yaml")
    assert "hence f/f/" in flat and "sync push" in flat  # the URL's path explained; sync push warned against
    # windmill-cli's notes that need no action, named as it prints them
    assert '"No wmill.yaml found"' in flat and "\"No metadata generated yet ... Run 'wmill generate-metadata'\"" in flat


def test_the_readme_gives_the_same_steps(tmp_path):
    steps = export_steps(tmp_path / "my-workspace")
    commands = printed_commands(steps)
    readme = " ".join(
        (ROOT / "README.md").read_text().split("## Windmill in five minutes", 1)[1].split("\n## ")[0].split()
    )
    assert commands[0].startswith("wmill workspace add ") and f"`{commands[0]}`" in readme  # log in, in the prose
    in_readme = [c.replace("~/my-workspace", str(tmp_path / "my-workspace")) for c in readme_commands()[1:]]
    assert in_readme == commands[1:]
    for words in ("create your telnyx resource", "public_key", "`auth`", "stream_url", "No wmill.yaml found"):
        assert words in readme, words
    assert readme.index("resource-type push") < readme.index("public_key") < readme.index("wmill folder push")


def placeholders(command: str, api: StandIn) -> str:
    """What a user puts in the placeholders: their Windmill, its workspace, their token."""
    command = command.replace("https://<your windmill>/", api.base_url).replace("<workspace id>", "test")
    return command.replace("<token>", "t0k3n")


def settings_of(value) -> list[dict]:
    """Every step's input_transforms in a flow value, wherever the step sits (branches included)."""
    if isinstance(value, dict):
        found = [value["input_transforms"]] if "input_transforms" in value else []
        return found + [s for v in value.values() for s in settings_of(v)]
    if isinstance(value, list):
        return [s for v in value for s in settings_of(v)]
    return []


def test_the_printed_steps_followed_with_no_terminal_deploy_the_flow_with_your_settings(tmp_path):
    """A user follows the export's steps one by one, in a shell with no terminal (as CI or an agent)."""
    if not WMILL.exists():
        pytest.fail("windmill-cli is not installed: run ./dev test (it runs npm ci in tests/windmill)")
    folder = tmp_path / "my-workspace"
    steps = export_steps(folder)
    commands = printed_commands(steps)
    env = {**os.environ, "NO_COLOR": "1", "HOME": str(tmp_path), "WMILL_CONFIG_DIR": str(tmp_path / "config")}
    cwd, said = tmp_path, []
    with StandIn() as api:

        def wmill(command: str) -> subprocess.CompletedProcess:
            words = shlex.split(placeholders(command, api))
            assert words[0] == "wmill", command
            run = subprocess.run(
                [str(WMILL), *words[1:]], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            assert run.returncode == 0, f"{command}\n{run.stdout}\n{run.stderr}"
            said.append(run.stdout + run.stderr)
            return run

        # without --token, with no terminal, windmill-cli cannot log in (what step 1 warns of)
        assert "Pass the token in --token" in wmill(commands[0].split(" --token")[0]).stdout
        assert not (tmp_path / "config" / "windmill" / "activeWorkspace").exists()
        for command in commands:
            if command.startswith("cd "):
                cwd = Path(shlex.split(command)[1])
                assert cwd == folder
                continue
            if command.startswith("wmill folder push"):  # steps 2 and 3: the user's part, in Windmill and in a file
                assert "telnyx" in api.workspace.resource_types  # the resource's type is there first
                api.workspace.resources["u/alice/telnyx"] = {"resource_type": "telnyx", "value": {"apiKey": "K"}}
                flow_yaml = folder / "f" / "telnyx" / "start_stream_on_answer.flow" / "flow.yaml"
                text = flow_yaml.read_text().replace("$res:u/you/telnyx", "$res:u/alice/telnyx")
                text = text.replace("wss://your-server.example.com/media", "wss://bot.example.com/media")
                text, filled = re.subn(r"(public_key:\s+type: static\s+value: )''", r"\1'PUBLIC-KEY-B64'", text)
                assert filled == 1
                flow_yaml.write_text(text)
            wmill(command)
    assert not api.unknown, api.unknown
    assert set(api.writes()) <= OURS | {("POST", "/api/workspaces/exists")}, api.writes()
    assert {r.headers.get("Authorization") for r in api.requests} == {"Bearer t0k3n"}  # logged in, no flag after
    (event,) = [s for s in settings_of(api.workspace.flows[FLOW]["value"]) if "public_key" in s]
    assert event["auth"]["value"] == "$res:u/alice/telnyx" and event["public_key"]["value"] == "PUBLIC-KEY-B64"
    assert event["stream_url"]["value"] == "wss://bot.example.com/media"
    assert list(api.workspace.scripts) == ["f/telnyx/streaming_start"]
    # windmill-cli printed the notes the steps call harmless, and the script kept the export's form
    notes = re.findall(r'"([^"]+?)(?: \.\.\.[^"]*)?"', " ".join(steps.split("windmill-cli then prints", 1)[1].split()))
    script_push = next(s for s in said if "streaming_start.py pushed" in s)
    assert len(notes) >= 2 and all(note.split(" ...")[0] in script_push for note in notes[:2]), (notes, script_push)
    assert api.workspace.scripts["f/telnyx/streaming_start"]["schema"] == json.loads(
        (ROOT / "script.schema.json").read_text()
    )
    # the webhook URL of step 6 runs this flow: jobs/run/f/ and the flow's path
    (url,) = [line.strip() for line in steps.splitlines() if "/jobs/run/" in line and line.startswith("      ")]
    parts = urlsplit(placeholders(url, api))
    assert parts.path.removeprefix("/api/w/test/jobs/run/f/") in api.workspace.flows
    assert parse_qs(parts.query) == {
        "token": ["t0k3n"],
        "raw": ["true"],
        "include_header": ["telnyx-signature-ed25519,telnyx-timestamp"],
    }
