"""A Windmill worker in miniature, written from Windmill's python_executor.rs and common.rs: it runs
script.py the way a worker runs a Python job, in a process that has only the packages of a lock.

- `site(lock, python)`: the lock's pinned requirements installed one by one with ``--no-deps --target``
  (as the worker installs them) by that interpreter's pip, cached per lock and Python under
  tests/windmill/.sites/.
- `pythons()`: the CPython versions Windmill runs scripts on (3.10 to 3.13), as interpreters found on
  this machine (pyenv's, or ``WINDMILL_PYTHONS``).
- `Worker.run(args)`: one job. ``$res:`` and ``$var:`` strings are resolved (at any depth), the
  script is written as a module into a fresh job folder with a generated ``wrapper.py`` that reads
  ``args.json``, drops null arguments that have a default in ``main``'s signature (as Windmill's
  parser reports it), drops ``'<function call>'`` values, calls ``main(**args)`` and writes the
  result (``json.dumps(default=str)``, NaN/Infinity as null) or the error JSON (``message``,
  ``name``, ``stack``, ``extra`` = the exception's ``__dict__``, ``step_id``).
- Relative imports (python_executor.rs, loader.py): when the script's text matches Windmill's
  RELATIVE_IMPORT_REGEX (``import f.``, ``from u.``, ``from .x``...), the job folder gets a loader
  module, imported first by the wrapper, that fetches an imported workspace script (``f.a.b`` ->
  ``GET {BASE_INTERNAL_URL}/api/w/{WM_WORKSPACE}/scripts/raw/p/f/a/b.py`` with ``WM_TOKEN``) when it
  is imported, writes it under the job folder's tmp/ and loads it from there.
- `Worker.dedicated()`: a dedicated worker: one process, one JSON line of arguments per job on
  stdin, one ``wm_res[success]:...`` / ``wm_res[error]:...`` line per job on stdout (no ``extra``).

The job's environment is cleared: it gets PATH, PYTHONPATH (the lock's packages and the job
folder; no site-packages at all, ``-S``) and the variables the worker group passes on.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODULE = "streaming_start"  # the script's module name in the job folder (f/telnyx/streaming_start)
PYTHON = getattr(sys, "_base_executable", sys.executable)  # the interpreter, not the dev venv
# Windmill runs Python scripts on CPython 3.10 and newer (3.9 is refused): backend/windmill-worker/src/
# python_versions.rs. 3.11 is the instance default, 3.12 "latest stable", 3.13 selectable.
WINDMILL_PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def pythons() -> dict[str, str | None]:
    """Each Windmill Python version -> an interpreter of it on this machine, or None when there is none.
    ``WINDMILL_PYTHONS="3.10=/path/python3.10 3.11=..."`` overrides; otherwise pyenv's versions (the
    machine image has them) and then ``python3.X`` on PATH are used."""
    given = dict(pair.split("=", 1) for pair in os.environ.get("WINDMILL_PYTHONS", "").split())
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found: dict[str, str | None] = {}
    for version in WINDMILL_PYTHONS:
        candidates = [given.get(version)]
        candidates += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True)
        candidates.append(shutil.which(f"python{version}"))
        found[version] = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    return found


# Windmill's RELATIVE_IMPORT_REGEX (python_executor.rs): a script that matches gets the loader below
RELATIVE_IMPORT = re.compile(r"(import|from)\s(((u|f)\.)|\.)")

# Windmill's loader.py does this; written here in our own words.
LOADER = """\
import os, sys, urllib.request
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec, SourceFileLoader


class _Package(Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__path__ = []


class _WorkspaceScripts(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        parts = name.split(".")
        if parts[0] not in ("f", "u"):
            return None
        if len(parts) <= 2:
            return ModuleSpec(name, _Package(), is_package=True)
        url = "%s/api/w/%s/scripts/raw/p/%s.py" % (
            os.environ.get("BASE_INTERNAL_URL"), os.environ.get("WM_WORKSPACE"), "/".join(parts))
        request = urllib.request.Request(url, headers={"Authorization": "Bearer %s" % os.environ.get("WM_TOKEN")})
        try:
            with urllib.request.urlopen(request) as answer:
                text = answer.read().decode("utf-8")
        except Exception:  # as Windmill: an empty module, so the import fails naming the missing name
            return ModuleSpec(name, _Package(), is_package=True)
        folder = os.path.join(os.getcwd(), "tmp", *parts[:-1])
        os.makedirs(folder, exist_ok=True)
        file = os.path.join(folder, parts[-1] + ".py")
        with open(file, "w") as f:
            f.write(text)
        return ModuleSpec(name, SourceFileLoader(name, file), origin=file)


sys.meta_path.append(_WorkspaceScripts())
"""

WRAPPER = """\
{import_loader}
import json, math, os, sys, traceback
from {module} import main

def _nan_to_null(text):
    return text.replace("NaN", "null").replace("Infinity", "null")

def _error(e, with_extra):
    err = {{"message": str(e), "name": type(e).__name__,
            "stack": "".join(traceback.format_exception(type(e), e, e.__traceback__)),
            "step_id": os.environ.get("WM_FLOW_STEP_ID")}}
    if with_extra and e.__dict__:
        err["extra"] = e.__dict__
    return json.dumps(err, separators=(",", ":"), default=str)

def _prepare(kwargs):
    for name in {defaulted!r}:
        if name in kwargs and kwargs[name] is None:
            del kwargs[name]
    return {{k: v for k, v in kwargs.items() if v != "<function call>"}}

if {dedicated!r}:
    for line in sys.stdin:
        try:
            res = main(**_prepare(json.loads(line)))
            print("wm_res[success]:" + _nan_to_null(json.dumps(res, separators=(",", ":"), default=str)), flush=True)
        except BaseException as e:
            print("wm_res[error]:" + _error(e, False), flush=True)
else:
    with open("args.json") as f:
        kwargs = _prepare(json.load(f))
    try:
        res = main(**kwargs)
        with open("result.json", "w") as f:
            f.write(_nan_to_null(json.dumps(res, separators=(",", ":"), default=str)))
    except BaseException as e:
        with open("result.json", "w") as f:
            f.write(_error(e, True))
        sys.exit(1)
"""


def site(lock: Path, python: str = PYTHON, announce: Callable[[], None] | None = None) -> Path:
    """The lock's packages, each installed with --no-deps into one target folder by ``python``'s pip
    (its wheels are the ones that interpreter can load; cached). ``announce()`` is called before pip runs
    (not when the folder is there already)."""
    digest = hashlib.sha256(lock.read_bytes() + _version(python).encode()).hexdigest()[:16]
    target = HERE / ".sites" / f"{lock.stem}-{digest}"
    if not (target / ".complete").exists():
        if announce is not None:
            announce()
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--target",
                str(target),
                "-r",
                str(lock),
            ],
            check=True,
            timeout=600,
        )
        (target / ".complete").touch()
    return target


@functools.cache
def _version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout


def defaulted_arguments(script: Path) -> list[str]:
    """main's arguments that have a default, as Windmill's own parser reads them (infer.mjs). Windmill
    parses a script when it is saved, not in each job: parsed once per text here too."""
    return list(_defaulted(script.read_text(), (ROOT / "script.schema.json").read_text()))


@functools.lru_cache(maxsize=64)
def _defaulted(text: str, schema: str) -> tuple[str, ...]:
    with tempfile.TemporaryDirectory(prefix="windmill-parse-") as folder:
        (Path(folder) / "main.py").write_text(text)
        (Path(folder) / "schema.json").write_text(schema)
        out = subprocess.run(
            ["node", str(HERE / "infer.mjs"), str(Path(folder) / "main.py"), str(Path(folder) / "schema.json")],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    return tuple(arg["name"] for arg in json.loads(out.stdout)["args"] if arg["has_default"])


@dataclass
class Job:
    success: bool
    result: Any  # the result, or the error JSON
    logs: str  # what the job printed (stdout and stderr)
    wall_s: float = 0.0  # the job's process, from its start to its exit


@dataclass
class Worker:
    site: Path
    env: dict[str, str] = field(default_factory=dict)  # what the worker group passes on
    resources: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    script: Path = ROOT / "script.py"
    step_id: str | None = None
    python: str = PYTHON  # the interpreter the worker runs jobs on
    windmill: tuple[str, str] | None = None  # Windmill's internal base URL and the job's token (relative imports)
    flags: tuple[str, ...] = ()  # more interpreter options (./dev bench: -X importtime)

    def __post_init__(self) -> None:
        self._defaulted = defaulted_arguments(self.script)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$res:"):
            return self.resources[value[len("$res:") :]]
        if isinstance(value, str) and value.startswith("$var:"):
            return self.variables[value[len("$var:") :]]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _job_folder(self, dedicated: bool) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="windmill-job-"))
        shutil.copyfile(self.script, folder / f"{MODULE}.py")
        relative = RELATIVE_IMPORT.search(self.script.read_text()) is not None
        if relative:
            (folder / "loader.py").write_text(LOADER)
        (folder / "wrapper.py").write_text(
            WRAPPER.format(
                module=MODULE,
                defaulted=self._defaulted,
                dedicated=dedicated,
                import_loader="import loader" if relative else "",
            )
        )
        if "MUTANT_UNDER_TEST" in os.environ:  # ./dev mutate: mutmut reads its settings from the cwd
            shutil.copyfile(ROOT / "pyproject.toml", folder / "pyproject.toml")
        return folder

    def _environment(self, folder: Path) -> dict[str, str]:
        path = f"{self.site}{os.pathsep}{folder}"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": path}
        if "MUTANT_UNDER_TEST" in os.environ:  # ./dev mutate: the mutated script imports mutmut; after the lock's
            import importlib  # packages, so those still win

            mutmut = importlib.import_module("mutmut")  # (only ./dev mutate installs it)

            env["PYTHONPATH"] = f"{path}{os.pathsep}{Path(str(mutmut.__file__)).parent.parent}"
            env["MUTANT_UNDER_TEST"] = os.environ["MUTANT_UNDER_TEST"]
        if self.step_id:
            env["WM_FLOW_STEP_ID"] = self.step_id
        if self.windmill is not None:
            base, token = self.windmill
            env.update(BASE_INTERNAL_URL=base.rstrip("/"), WM_TOKEN=token, WM_WORKSPACE="test")
        return {**env, **self.env}

    def _spawn(self, folder: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.python, "-S", "-s", *self.flags, "wrapper.py"],
            cwd=folder,
            env=self._environment(folder),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def run(self, args: dict[str, Any]) -> Job:
        folder = self._job_folder(dedicated=False)
        try:
            (folder / "args.json").write_text(json.dumps(self.resolve(args)))
            began = time.perf_counter()
            done = self._spawn(folder)
            wall = time.perf_counter() - began
            result = json.loads((folder / "result.json").read_text())
            return Job(done.returncode == 0, result, done.stdout + done.stderr, wall)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def dedicated(self, jobs: list[dict[str, Any]]) -> tuple[list[Job], str]:
        """Run every job in ONE process; return the jobs and everything the process printed."""
        folder = self._job_folder(dedicated=True)
        try:
            done = self._spawn(folder, "".join(json.dumps(self.resolve(args)) + "\n" for args in jobs))
            results = []
            for line in done.stdout.splitlines():
                for tag, ok in (("wm_res[success]:", True), ("wm_res[error]:", False)):
                    if line.startswith(tag):
                        results.append(Job(ok, json.loads(line[len(tag) :]), ""))
            return results, done.stdout + done.stderr
        finally:
            shutil.rmtree(folder, ignore_errors=True)


# -- the run form ---------------------------------------------------------------------------------
def set_input_cat(prop: dict[str, Any]) -> str:
    """frontend/src/lib/utils.ts setInputCat, for the types this form uses."""
    kind, fmt = prop.get("type"), prop.get("format") or ""
    if kind in ("number", "integer"):
        return "number"  # checked before enum: an integer enum is a number box
    if kind == "boolean":
        return "boolean"
    if kind == "array" and prop.get("items") is not None:
        return "list"
    if kind == "object" and fmt.startswith("resource"):
        return "resource-object"
    if not kind or kind in ("object", "array"):
        return "object"
    if kind == "string" and prop.get("enum"):
        return "enum"
    return "string"


def untouched(prop: dict[str, Any], required: bool = False) -> Any:
    """What the run form submits for a field the user never touched; the module-level NOTHING when
    the field is absent from the args. Observed with Windmill's own RunForm (npm windmill-components
    1.655.2) in a browser (the reference's section "The form"): a nullable text or number field is
    absent, a required text field holds "", an enum is absent, a boolean is false, a nested object
    of booleans is sent whole. A schema without `nullable` (older forms) gets "" and [] as issue 9
    observed. An untouched nullable list is taken to be absent like a nullable text field."""
    if prop.get("default") is not None:
        return prop["default"]
    cat = set_input_cat(prop)
    if cat in ("string", "number"):
        if prop.get("nullable") or cat == "number":
            return NOTHING
        return ""
    if cat == "enum":
        return prop["enum"][0] if required else NOTHING
    if cat == "boolean":
        return False
    if cat == "list":
        return NOTHING if prop.get("nullable") else []
    if cat == "object" and prop.get("properties"):  # a nested form, built field by field
        nested = prop.get("required", [])
        values = {name: untouched(p, name in nested) for name, p in prop["properties"].items()}
        return {k: v for k, v in values.items() if v is not NOTHING}
    return NOTHING


NOTHING = object()


DELETED = None  # typed, then deleted: the form sends null
BLANK_ITEM = {"name": "", "value": ""}  # "+ Add item" left blank


def form_run(schema: dict[str, Any], typed: dict[str, Any], variables: dict[str, str] | None = None) -> dict[str, Any]:
    """The arguments the run form sends: every field untouched but those in ``typed`` (a dotted
    path for body fields, e.g. ``body.stream_url``; DELETED for text typed then deleted). Text typed
    into a ``password`` field is never in the args: the form saves it as a new secret variable (put in
    ``variables``) and sends its ``$var:`` path, which the worker resolves before the job runs."""
    args: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        value = untouched(prop, name in schema.get("required", []))
        if value is not NOTHING:
            args[name] = value
    for path, value in typed.items():
        target, prop = args, schema
        *parents, last = path.split(".")
        for parent in parents:
            target, prop = target.setdefault(parent, {}), prop["properties"][parent]
        if prop["properties"][last].get("password") and isinstance(value, str):
            secret = f"u/admin/secret_arg/{len(variables or {}) + 1:06d}"
            if variables is None:
                raise ValueError(f"{path} is a password field: pass `variables` to hold the secret it creates")
            variables[secret], value = value, f"$var:{secret}"
        target[last] = value
    return args
