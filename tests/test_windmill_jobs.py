"""script.py run as Windmill runs it (tests/windmill/harness.py): jobs from the run form and from
flow steps, in a process with only the packages of the lock, against the emulator on 127.0.0.1.
Run with the shipped lock (deploy/) and with the lowest versions the PEP 723 header allows, each on
every CPython Windmill runs scripts on (3.10 to 3.13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import KEY, ROOT, URL
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from windmill.harness import BLANK_ITEM, DELETED, Worker, form_run, pythons, site

from emulator import Emulator

SCHEMA = json.loads((ROOT / "script.schema.json").read_text())
LOCKS = {"lock": ROOT / "deploy" / "streaming_start.script.lock", "floor": ROOT / "tests" / "windmill" / "floor.lock"}
RESOURCE = "u/admin/telnyx"
TOKEN = "s3cr3t-stream-token"
# What the form sent with the schema before `nullable` (issue 9's observation, typing only stream_url)
OLD_FORM_BODY = {
    "stream_url": "wss://example.com/media",
    "stream_auth_token": "",
    "custom_parameters": [],
    "enable_dialogflow": False,
    "dialogflow_config": {"analyze_sentiment": False, "partial_automated_agent_reply": False},
    "client_state": "",
    "command_id": "",
}


@pytest.fixture(scope="module")
def server():
    with Emulator(api_key=KEY, media=False) as emu:
        yield emu


PYTHONS = pythons()
if os.environ.get("MUTANT_UNDER_TEST"):  # ./dev mutate: a mutated script imports mutmut, installed for this Python only
    PYTHONS = {v: p for v, p in PYTHONS.items() if v == f"{sys.version_info[0]}.{sys.version_info[1]}"}


def interpreter(version: str) -> str:
    python = PYTHONS[version]
    if python is None:
        message = (
            f"no CPython {version} on this machine (Windmill runs scripts on it): install it with pyenv, or "
            f"set WINDMILL_PYTHONS='{version}=/path/to/python{version}'"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must prove every version
        pytest.skip(message)
    return python


@pytest.fixture(scope="module", params=[(lock, v) for lock in LOCKS for v in PYTHONS], ids="-".join)
def worker(request, server):
    lock, version = request.param
    python = interpreter(version)
    return Worker(
        site(LOCKS[lock], python),
        env={"TELNYX_BASE_URL": server.base_url},
        resources={RESOURCE: {"apiKey": KEY}},
        variables={"u/admin/stream_token": TOKEN},
        python=python,
    )


def test_each_worker_runs_the_python_it_names(worker):
    done = subprocess.run(
        [worker.python, "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    )
    assert worker.python.endswith("python" + done.stdout.strip()) and done.stdout.strip() in PYTHONS


def test_requires_python_is_what_is_tested():
    header = (ROOT / "script.py").read_text().split("# ///")[1]
    (line,) = [line for line in header.splitlines() if "requires-python" in line]
    allowed = SpecifierSet(line.split("=", 1)[1].strip().strip('"'))
    assert [v for v in ("3.9", *PYTHONS, "3.14") if f"{v}.0" in allowed] == [*PYTHONS, "3.14"]


def form(call: str, variables: dict | None = None, **typed) -> dict:
    """A run from Windmill's run form: the resource picked, the call id typed, and `typed` body fields
    (a password field's text goes into `variables`, the worker's, as the form's secret variable)."""
    fields = {"auth": f"$res:{RESOURCE}", "call_control_id": call, **{f"body.{k}": v for k, v in typed.items()}}
    return form_run(SCHEMA, fields, variables)


def step(call: str, body: dict, **args) -> dict:
    """A flow step's arguments: the resource by path, the call id, the body, and other arguments."""
    return {"auth": f"$res:{RESOURCE}", "call_control_id": call, "body": body, **args}


def test_the_form_emulation_reproduces_what_the_old_form_sent():
    old = json.loads(
        subprocess.run(
            ["git", "show", "9b03690:script.schema.json"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    args = form_run(old, {"body.stream_url": "wss://example.com/media"})
    assert args["body"] == OLD_FORM_BODY
    assert (args["timeout_s"], args["deadline_s"], args["max_retries"]) == (10.0, 20.0, 2)


def test_what_the_form_sends_now_for_an_untouched_body():
    """As observed with Windmill's RunForm in a browser: untouched text fields are absent."""
    args = form_run(SCHEMA, {"call_control_id": "v3:x"})
    assert args["body"] == {
        "enable_dialogflow": False,
        "dialogflow_config": {"analyze_sentiment": False, "partial_automated_agent_reply": False},
    }
    assert "auth" not in args  # a resource picker left empty: the Run button stays disabled anyway


def test_what_the_form_sends_for_a_password_a_deletion_and_a_blank_item():
    variables: dict = {}
    args = form_run(
        SCHEMA,
        {
            "body.stream_url": DELETED,
            "body.stream_auth_token": TOKEN,
            "body.custom_parameters": [{"name": "tenant", "value": "acme"}, BLANK_ITEM],
        },
        variables,
    )
    body = args["body"]
    assert body["stream_url"] is None
    assert body["stream_auth_token"].startswith("$var:u/admin/secret_arg/") and TOKEN not in json.dumps(args)
    assert variables == {body["stream_auth_token"][len("$var:") :]: TOKEN}
    assert body["custom_parameters"][1] == {"name": "", "value": ""}


def test_an_untouched_form_streams_nothing_and_is_refused(worker, server):
    before = len(server.backend.requests)
    job = worker.run(form(server.create_call()))
    assert not job.success
    assert job.result["name"] == "TelnyxInputError" and job.result["extra"]["field"] == "body.stream_url"
    assert job.result["message"].startswith("body.stream_url is missing: with no stream_url and enable_dialogflow")
    assert len(server.backend.requests) == before


def test_a_deleted_stream_url_is_refused_like_an_empty_one(worker, server):
    job = worker.run(form(server.create_call(), stream_url=DELETED))
    assert not job.success and job.result["extra"]["field"] == "body.stream_url"


def test_a_form_run_with_a_token_a_blank_item_and_a_filled_one(worker, server):
    call = server.create_call()
    args = form(
        call,
        worker.variables,
        stream_url=URL,
        stream_auth_token="form-typed-token",
        custom_parameters=[BLANK_ITEM, {"name": "tenant", "value": "acme"}],
    )
    job = worker.run(args)
    assert job.success, job.result
    (sent,) = sent_bodies_for(server, call)
    assert sent["stream_auth_token"] == "form-typed-token"  # the worker resolved the $var: secret
    assert sent["custom_parameters"] == [{"name": "tenant", "value": "acme"}]


def test_the_job_process_has_only_the_locks_packages(worker):
    done = subprocess.run(
        [worker.python, "-S", "-s", "-c", "import requests"], env={"PATH": "/usr/bin:/bin"}, capture_output=True
    )
    assert done.returncode != 0, "requests is importable without the lock: the harness would prove nothing"
    job = subprocess.run(
        [
            worker.python,
            "-S",
            "-s",
            "-c",
            "import requests, urllib3, jsonschema; print(requests.__version__, urllib3.__version__)",
        ],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(worker.site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert job.stdout.split() in (["2.34.2", "2.8.0"], ["2.32.4", "2.6.0"])


def test_the_locks_satisfy_the_pep723_header():
    header = (ROOT / "script.py").read_text().split("# ///")[1]
    wanted = [
        Requirement(line.strip().strip('#",').strip().strip('"'))
        for line in header.splitlines()
        if line.strip().startswith('#   "')
    ]
    assert {r.name for r in wanted} == {"requests", "urllib3", "jsonschema"}
    for lock in LOCKS.values():
        pins = dict(line.split("==") for line in lock.read_text().split())
        for requirement in wanted:
            assert requirement.specifier.contains(pins[requirement.name]), (lock.name, requirement)
    floor = dict(line.split("==") for line in LOCKS["floor"].read_text().split())
    for requirement in wanted:  # the floor lock holds the lowest version each specifier allows
        lowest = min(Version(s.version) for s in requirement.specifier if s.operator == ">=")
        assert Version(floor[requirement.name]) == lowest


def test_a_form_run_with_only_stream_url_starts_the_stream(worker, server):
    call = server.create_call()
    job = worker.run(form(call, stream_url=URL))
    assert job.success, job.result
    assert job.result == {"data": {"result": "ok"}}
    (sent,) = sent_bodies_for(server, call)
    assert sent["stream_url"] == URL and len(sent["command_id"]) == 36  # a generated UUID
    assert not [k for k, v in sent.items() if v in ("", [], {}, None)], sent


def test_the_old_forms_blank_values_are_not_set(worker, server):
    call = server.create_call()
    job = worker.run(step(call, OLD_FORM_BODY, timeout_s=10, deadline_s=20, max_retries=2))
    assert job.success, job.result
    (sent,) = sent_bodies_for(server, call)
    assert set(sent) == {"stream_url", "enable_dialogflow", "dialogflow_config", "command_id"}
    assert sent["command_id"] != ""


def test_a_form_run_with_a_typed_command_id_sends_it(worker, server):
    call = server.create_call()
    job = worker.run(form(call, stream_url=URL, command_id="evt-42"))
    assert job.success, job.result
    assert sent_bodies_for(server, call)[0]["command_id"] == "evt-42"


def test_a_dialogflow_only_form_run_sends_no_stream_url(worker, server):
    call = server.create_call()
    job = worker.run(form(call, enable_dialogflow=True))
    assert job.success, job.result
    (sent,) = sent_bodies_for(server, call)
    assert "stream_url" not in sent and sent["enable_dialogflow"] is True


def test_a_flow_step_with_null_arguments_and_null_body_fields(worker, server):
    call = server.create_call()
    body = {
        "stream_url": URL,
        "stream_track": None,
        "client_state": None,
        "stream_auth_token": "$var:u/admin/stream_token",
    }
    job = worker.run(step(call, body, timeout_s=None, deadline_s=None, max_retries=None))
    assert job.success, job.result
    (sent,) = sent_bodies_for(server, call)
    assert sent["stream_auth_token"] == TOKEN  # the $var: secret, resolved before the job ran
    assert "stream_track" not in sent and "client_state" not in sent
    assert len(sent["command_id"]) == 36  # max_retries null -> its default 2 -> a command_id


@pytest.mark.parametrize(("status", "key"), [(422, KEY), (401, "KEYwrong_0123456789abcdef")])
def test_api_errors_reach_the_job_as_telnyx_api_errors_without_the_key(worker, server, status, key):
    call = server.create_call() if status == 401 else "v3:no-such-call"
    worker.resources[RESOURCE + "-" + str(status)] = {"apiKey": key}
    job = worker.run({"auth": f"$res:{RESOURCE}-{status}", "call_control_id": call, "body": {"stream_url": URL}})
    assert not job.success
    error = job.result
    assert error["name"] == "TelnyxAPIError" and error["message"].startswith(f"{status} ")
    assert error["extra"]["status"] == status and error["extra"]["codes"] == (["10009"] if status == 401 else ["90015"])
    assert key not in json.dumps(error) + job.logs


def test_bad_input_is_a_telnyx_input_error_naming_the_field_and_nothing_is_sent(worker, server):
    before = len(server.backend.requests)
    job = worker.run(form(server.create_call(), stream_url="http://not-a-websocket"))
    assert not job.success
    assert job.result["name"] == "TelnyxInputError" and job.result["extra"]["field"] == "body.stream_url"
    assert len(server.backend.requests) == before + 0
    assert KEY not in json.dumps(job.result) + job.logs


def test_a_dedicated_worker_serves_many_jobs_in_one_process(worker, server):
    calls = [server.create_call() for _ in range(5)]
    connections = server.connections_accepted
    jobs = [
        form(calls[0], stream_url=URL),
        {"auth": {"apiKey": KEY}, "call_control_id": "v3:no-such-call", "body": {"stream_url": URL}},
        {"auth": {"apiKey": KEY}, "call_control_id": calls[1], "body": OLD_FORM_BODY},
        *[form(c, stream_url=URL) for c in calls[2:]],
    ]
    results, printed = worker.dedicated([worker.resolve(j) for j in jobs])
    assert [r.success for r in results] == [True, False, True, True, True, True]
    assert results[1].result["name"] == "TelnyxAPIError" and results[1].result["message"].startswith("422 ")
    assert "extra" not in results[1].result  # a dedicated worker's error JSON has none
    assert all(len(sent_bodies_for(server, c)) == 1 for c in calls)
    assert server.connections_accepted - connections == 1, "the pooled connection was not kept between jobs"
    assert KEY not in printed


def sent_bodies_for(emulator, call):
    """The bodies the emulator received for one call."""
    return [json.loads(r.body) for r in emulator.backend.requests if r.path.startswith(f"/v2/calls/{call}/")]
