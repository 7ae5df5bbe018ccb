"""script.schema.json: generated from script.py, valid, and a fixed point of Windmill's own inference."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import KEY, ROOT, URL

import script
import script_cli

SCHEMA = ROOT / "script.schema.json"
WINDMILL = ROOT / "tests" / "windmill"
RESOURCE = ROOT / "resource_types" / "telnyx.resource-type.json"


def infer(script_path: Path, schema_path: Path = SCHEMA) -> dict:
    """Windmill's parser + merge (tests/windmill/infer.mjs) on a script and a stored schema."""
    if shutil.which("node") is None or not (WINDMILL / "node_modules").is_dir():
        pytest.fail("the Windmill parser is not installed: run ./dev test (it runs npm ci in tests/windmill)")
    out = subprocess.run(
        ["node", str(WINDMILL / "infer.mjs"), str(script_path), str(schema_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def test_file_is_what_the_generator_writes():
    generated = json.dumps(script_cli.windmill_schema(), indent=2, ensure_ascii=False) + "\n"
    assert SCHEMA.read_text() == generated, "script.schema.json is stale: run ./dev schema"


def test_cli_prints_the_same_schema():
    out = subprocess.run(
        [sys.executable, str(ROOT / "script.py"), "--print-schema"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == json.loads(SCHEMA.read_text())


def test_schema_is_valid_json_schema_2020_12():
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"auth": {"apiKey": "k"}, "call_control_id": "v3:x", "body": {"stream_url": URL}}, schema)


def test_form_shape():
    schema = json.loads(SCHEMA.read_text())
    props = schema["properties"]
    assert (
        schema["order"] == list(props) == ["auth", "call_control_id", "body", "timeout_s", "deadline_s", "max_retries"]
    )
    assert schema["required"] == ["auth", "call_control_id"]
    assert props["auth"]["type"] == "object" and props["auth"]["format"] == "resource-telnyx"
    assert props["call_control_id"]["type"] == "string" and props["call_control_id"]["description"]
    body = props["body"]
    assert body["type"] == "object" and "format" not in body
    assert body["order"] == list(body["properties"]) == list(script.BODY_FIELDS)
    assert len(body["properties"]) == 13
    assert body["properties"]["stream_auth_token"]["password"] is True
    assert len(body["properties"]["stream_codec"]["enum"]) == 7
    assert len(body["properties"]["stream_bidirectional_codec"]["enum"]) == 6
    assert body["properties"]["stream_bidirectional_sampling_rate"]["enum"] == [8000, 16000, 22050, 24000, 48000]
    for name, prop in body["properties"].items():
        assert prop.get("description"), f"{name} has no description"
        assert "default" not in prop, f"{name}: a form default would be sent even when the user leaves it empty"
    assert "'rtp'" in body["properties"]["stream_bidirectional_codec"]["description"]


def test_the_validator_enforces_the_stored_form():
    """Every enum, type and length limit of the stored form's body is refused when broken, naming the field."""
    body = json.loads(SCHEMA.read_text())["properties"]["body"]
    checked = 0
    for name, prop in body["properties"].items():
        broken = []
        if "enum" in prop:
            broken.append("no-such-value" if prop["type"] == "string" else 12345)
        if "maxLength" in prop:
            broken.append("x" * (prop["maxLength"] + 1))
        broken.append({"not": "this type"} if prop["type"] != "object" else ["not", "an object"])
        for value in broken:
            with pytest.raises(script.TelnyxInputError) as info:
                script.check_body({"stream_url": URL, "stream_bidirectional_mode": "rtp", name: value})
            assert info.value.field.startswith(f"body.{name}"), (name, value, info.value.field)
            checked += 1
    assert checked == 13 + 6 + 1  # a type per field, an enum value for 6, a length for 1


def test_windmill_inference_is_a_fixed_point():
    result = infer(ROOT / "script.py")
    stored = json.loads(SCHEMA.read_text())
    assert result["schema"] == stored, "re-inferring the form from main's signature changed it"
    args = result["args"]
    assert [a["name"] for a in args] == stored["order"]
    assert [a["name"] for a in args if not a["has_default"]] == stored["required"]
    types = {a["name"]: a["typ"] for a in args}
    assert types["auth"] == {"resource": "telnyx"}  # the resource picker
    assert types["body"] == "unknown"  # so the stored body form is kept


@pytest.mark.parametrize(
    ("annotation", "damage"),
    [
        ("body: dict = None", "properties"),
        ("body: StreamingStartBody = None", "format"),
    ],
)
def test_the_fixed_point_check_catches_a_bad_annotation(tmp_path, annotation, damage):
    # The same check on a script whose body annotation Windmill reads differently must fail.
    source = (ROOT / "script.py").read_text()
    mutated = source.replace('body: "StreamingStartBody | None" = None', annotation)
    assert mutated != source
    path = tmp_path / "script.py"
    path.write_text(mutated)
    body = infer(path)["schema"]["properties"]["body"]
    assert body != json.loads(SCHEMA.read_text())["properties"]["body"]
    if damage == "properties":
        assert body.get("properties") == {}  # dict wipes the body form
    else:
        assert body["format"] == "resource-StreamingStartBody"  # a resource picker instead of a form


def test_resource_type_file():
    resource = json.loads(RESOURCE.read_text())
    assert set(resource) == {"description", "schema"} and resource["description"]
    schema = resource["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    key = schema["properties"]["apiKey"]
    assert key["type"] == "string" and key["password"] is True and key["description"]
    assert schema["required"] == ["apiKey"]
    jsonschema.validate({"apiKey": KEY}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({}, schema)


def test_main_accepts_a_resource_of_that_shape(emulator):
    schema = json.loads(RESOURCE.read_text())["schema"]
    resource = {"apiKey": KEY}
    jsonschema.validate(resource, schema)
    assert script.main(resource, emulator.create_call(), {"stream_url": URL}) == {"data": {"result": "ok"}}


def test_script_imports_only_what_windmill_installs():
    import ast

    tree = ast.parse((ROOT / "script.py").read_text())

    def imported(nodes: list) -> set:
        return {
            (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
            for node in nodes
            for n in ast.walk(node)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in (n.names if isinstance(n, ast.Import) else [n])
        }

    command_line = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    job = [n for n in tree.body if n not in command_line]  # what a Windmill job runs
    mutation_run = {"mutmut"} if "MUTANT_UNDER_TEST" in os.environ else set()  # ./dev mutate's trampolines
    assert imported(job) - set(sys.stdlib_module_names) - mutation_run == {"requests", "urllib3", "jsonschema"}
    assert imported(command_line) - set(sys.stdlib_module_names) == {"script_cli"}  # only when run as a command
    header = (ROOT / "script.py").read_text().split("# ///")[1]
    for dependency in ("requests>=", "jsonschema>=", "urllib3>="):
        assert dependency in header
