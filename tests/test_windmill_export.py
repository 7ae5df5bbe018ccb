"""./dev windmill-export writes what windmill-cli reads, and it is what this repo ships; ./dev checks
its Python first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from test_schema import infer

WINDMILL = ROOT / "tests" / "windmill"


def read_as_wmill(folder) -> dict:
    out = subprocess.run(
        ["node", str(WINDMILL / "export.mjs"), str(folder)], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_the_export_is_the_shipped_script_form_lock_and_resource_type(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "deploy.export", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    workspace = read_as_wmill(tmp_path)
    assert list(workspace["scripts"]) == ["f/telnyx/streaming_start"]
    script = workspace["scripts"]["f/telnyx/streaming_start"]
    assert script["content"] == (ROOT / "script.py").read_text()
    assert script["schema"] == json.loads((ROOT / "script.schema.json").read_text())  # the full form
    assert script["lock"] == (ROOT / "deploy" / "streaming_start.script.lock").read_text()
    assert script["kind"] == "script" and script["summary"].startswith("Telnyx") and script["description"]
    shipped = json.loads((ROOT / "resource_types" / "telnyx.resource-type.json").read_text())
    assert workspace["resourceTypes"] == {"telnyx": shipped}
    assert workspace["config"] is None  # no wmill.yaml: a synced folder's own settings are never replaced
    assert (tmp_path / "f" / "telnyx" / "folder.meta.yaml").read_text() == "{}\n"  # windmill-cli needs one
    # Windmill's parser keeps the exported form when it re-reads the exported script
    exported = tmp_path / "f" / "telnyx"
    (tmp_path / "stored.schema.json").write_text(json.dumps(script["schema"]))
    assert infer(exported / "streaming_start.py", tmp_path / "stored.schema.json")["schema"] == script["schema"]


def test_the_dev_command_writes_the_same_files(tmp_path):
    done = subprocess.run(
        [str(ROOT / "dev"), "windmill-export", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert read_as_wmill(tmp_path)["scripts"]["f/telnyx/streaming_start"]["content"] == (ROOT / "script.py").read_text()


def test_dev_says_which_python_it_needs_before_anything_else(tmp_path):
    """On a Python older than 3.11, ./dev stops with one line instead of failing inside pip."""
    from windmill.harness import pythons

    old = pythons()["3.10"]
    if old is None:
        pytest.skip("no CPython 3.10 on this machine")
    shutil.copyfile(ROOT / "dev", tmp_path / "dev")
    (tmp_path / "dev").chmod(0o755)
    done = subprocess.run(
        [str(tmp_path / "dev"), "test"], env={**os.environ, "PYTHON": old}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "./dev needs Python 3.11 or newer with venv (found: Python 3.10); run it as PYTHON=python3.12 ./dev test\n"
    )
    assert not (tmp_path / ".venv").exists()


def test_an_edited_flow_is_kept_and_the_note_names_every_setting_to_copy(tmp_path):
    export = [sys.executable, "-m", "deploy.export", str(tmp_path)]
    assert subprocess.run(export, cwd=ROOT, capture_output=True, timeout=60).returncode == 0
    flow = tmp_path / "f" / "telnyx" / "start_stream_on_answer.flow" / "flow.yaml"
    flow.write_text(flow.read_text().replace("value: ''", "value: 'my public key'", 1))  # the user's setting
    again = subprocess.run(export, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "my public key" in flow.read_text()  # theirs, untouched
    assert f"kept (yours)  {flow}" in again.stdout
    note = " ".join(line for line in again.stdout.splitlines() if "was kept" in line or line.startswith(" "))
    for setting in (
        "auth",
        "public_key",
        "stream_url",
        "voice_bot",
        "stream_options",
        "answer_incoming",
        "stream_outgoing",
    ):
        assert setting in note, setting  # every setting the shipped flow has
    import yaml

    shipped = yaml.safe_load((ROOT / "deploy" / "start_stream_on_answer.flow" / "flow.yaml").read_text())
    (step,) = shipped["value"]["modules"][0]["value"]["branches"][0]["modules"]
    settings = {name for name, given in step["value"]["input_transforms"].items() if given["type"] == "static"}
    assert settings == {"auth", "public_key", "verify_signature", "stream_url", "voice_bot", "stream_options"} | {
        "answer_incoming",
        "stream_outgoing",
    }  # the note's list is all of them but verify_signature, which stays true
