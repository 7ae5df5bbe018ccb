"""Each part of the project has one room: script.py holds what a Windmill job runs, its public names
are declared and are what the tests use, and no import points from Telnyx's side to yours."""

from __future__ import annotations

import ast
import json

import pytest
from conftest import ROOT

import script

TESTS = ROOT / "tests"


def test_every_public_name_exists_and_the_tests_use_no_other():
    assert all(hasattr(script, name) for name in script.__all__)
    used = set()
    for path in TESTS.glob("*.py"):
        if path.name != "conftest.py":  # conftest reaches the few private parts a test needs (Internals)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "script":
                    used.add(node.attr)
    assert sorted(used - set(script.__all__) - {"__version__", "__file__", "__all__"}) == []


def test_script_py_holds_no_command_line_or_form_generator():
    tree = ast.parse((ROOT / "script.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & {"cli", "windmill_schema", "_cli_body"}
    assert "argparse" not in (ROOT / "script.py").read_text()


def test_the_resource_types_shortest_key_is_the_scripts():
    shipped = json.loads((ROOT / "resource_types" / "telnyx.resource-type.json").read_text())
    shortest = shipped["schema"]["properties"]["apiKey"]["minLength"]
    assert script.check_key("K" * shortest, "auth.apiKey", "") == "K" * shortest
    with pytest.raises(script.TelnyxInputError, match=f"is {shortest - 1} characters"):
        script.check_key("K" * (shortest - 1), "auth.apiKey", "")


def imports(where: str) -> set[str]:
    """The top-level names a folder's (or one file's) modules import."""
    names = set()
    root = ROOT / where
    for path in root.rglob("*.py") if root.is_dir() else [root]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_no_import_points_back_up():
    assert not imports("emulator") & {"stream_server", "demo", "script", "script_cli"}  # Telnyx's side
    assert not imports("stream_server") & {"emulator", "demo", "script"}  # your side
    assert "emulator" not in imports("audio_codecs.py") | imports("stream_server")
