"""Benchmarks: ``./dev bench`` (or ``python -m bench``). Ratios against baselines measured in the same run.

cold  one complete call in a fresh process (``python script.py ...``), against the emulator, versus
      bench/bare_requests.py (the same POST with bare requests, no checks), bench/bare_validated.py
      (the same plus a jsonschema validator: the floor while jsonschema is the validator of record)
      and, when the telnyx SDK is importable by --sdk-python, bench/official_sdk.py. Interleaved
      runs; median wall time and median peak RSS of each process (os.wait4).
warm  sequential calls in one process through ``script.main`` versus ``requests.Session().post`` and the
      official SDK's client (its own process, driven through a pipe), interleaved in blocks of 50;
      median and p99 per call.
compile  what compiling script.py costs every cold Windmill job (Python caches no job's bytecode).
silence  the webhook flow's designs (bench/silence.py), with the settings a user gets: from Telnyx's
      first webhook of an incoming call to the first media frame at the stream server, each flow step a
      cold job, and the jobs that start a process per call; then the answering step's cold job against a
      floor measured in the same run (a bare cold Python: requests, jsonschema and cryptography imported,
      one Ed25519 check, one POST) and what the step imports beyond it.

The emulator runs in its own process (``python -m emulator --no-media``) so it never competes for
this process's GIL. Results: a table on stdout and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
BODY = {"stream_url": "wss://media.example.com/stream", "stream_track": "both_tracks"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=15, help="fresh processes per variant (default 15)")
    parser.add_argument("--warm-calls", type=int, default=1000, help="calls per variant in one process (default 1000)")
    sdk = ROOT / ".venv-sdk" / "bin" / "python"  # ./dev bench installs bench/requirements-sdk.txt there
    parser.add_argument(
        "--sdk-python", default=str(sdk if sdk.exists() else sys.executable), help="a Python that can import telnyx"
    )
    parser.add_argument("--silence-calls", type=int, default=3, help="calls per flow design (default 3; 0: skip)")
    parser.add_argument(
        "--step-runs", type=int, default=9, help="cold jobs of the answering step and floor (default 9)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)

    emulators = [emulator_process(), emulator_process("--no-keep-alive")]
    try:
        ready, closing = (json.loads(e.stdout.readline()) for e in emulators)  # type: ignore[union-attr]
        env = dict(os.environ, TELNYX_BASE_URL=ready["base_url"], TELNYX_API_KEY=ready["api_key"])
        cold = cold_start(args, ready, env)
        warm = {
            "kept-alive connection": warm_calls(args.warm_calls, ready, args.sdk_python),
            "a new connection per call": warm_calls(args.warm_calls, closing, args.sdk_python),
        }
    finally:
        for emulator in emulators:
            emulator.terminate()
            emulator.wait(10)
    results = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "cold": cold,
        "warm": warm,
        "compile": compile_time(),
    }
    if args.silence_calls > 0:
        from .silence import measure, step_versus_floor

        results["silence"] = measure(args.silence_calls)
        results["step"] = step_versus_floor(args.step_runs)
    report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {out}")
    return 0


def emulator_process(*options: str) -> subprocess.Popen:
    """The emulator in a process of its own (it never competes for this process's GIL)."""
    command = [sys.executable, "-m", "emulator", "--no-media", "--quiet", *options]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def new_call(ready: dict[str, str]) -> str:
    """A fresh answered call: the emulator, like Telnyx, refuses a second stream on a call that streams (90045)."""
    import urllib.request

    origin = ready["base_url"].rsplit("/v2", 1)[0]
    request = urllib.request.Request(f"{origin}/_emulator/calls", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["call_control_id"])


def cold_start(args: argparse.Namespace, ready: dict[str, str], env: dict[str, str]) -> dict[str, Any]:
    body = json.dumps(BODY)
    variants = {  # the call id goes last: each run gets a call of its own
        "windmill job": [sys.executable, str(ROOT / "bench" / "windmill_job.py"), body],
        "script.py": [sys.executable, str(ROOT / "script.py"), "--body", body],
        "bare requests": [sys.executable, str(ROOT / "bench" / "bare_requests.py"), body],
        "bare + jsonschema": [sys.executable, str(ROOT / "bench" / "bare_validated.py"), body],
    }
    note = None
    if _imports_telnyx(args.sdk_python):
        variants["official SDK"] = [args.sdk_python, str(ROOT / "bench" / "official_sdk.py"), body]
    else:
        note = (
            f"official SDK skipped: {args.sdk_python} cannot import telnyx (pip install -r bench/requirements-sdk.txt)"
        )
        print(note)
    samples: dict[str, dict[str, list[float]]] = {name: {"wall_s": [], "rss_mb": []} for name in variants}
    names = list(variants)
    for _ in range(2):  # warm the OS file cache and .pyc files; not counted
        for name in names:
            run_once([*variants[name], new_call(ready)], env)
    for round_ in range(args.cold_runs):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]  # rotate: no variant always first
        for name in order:
            wall, rss = run_once([*variants[name], new_call(ready)], env)
            samples[name]["wall_s"].append(wall)
            samples[name]["rss_mb"].append(rss)
    base = statistics.median(samples["bare requests"]["wall_s"])
    floor = statistics.median(samples["bare + jsonschema"]["wall_s"])
    out: dict[str, Any] = {"runs": args.cold_runs, "note": note, "variants": {}}
    for name, values in samples.items():
        wall = statistics.median(values["wall_s"])
        out["variants"][name] = {
            "wall_s_median": round(wall, 4),
            "rss_mb_median": round(statistics.median(values["rss_mb"]), 1),
            "rss_mb_max": round(max(values["rss_mb"]), 1),
            "ratio_to_bare": round(wall / base, 3),
            "ratio_to_bare_jsonschema": round(wall / floor, 3),
        }
    if "official SDK" in samples:
        sdk_wall = out["variants"]["official SDK"]["wall_s_median"]
        out["script_to_sdk"] = round(out["variants"]["script.py"]["wall_s_median"] / sdk_wall, 3)
    return out


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process, which must succeed."""
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[1]} failed ({process.returncode}): {process.stderr.read().decode()}")  # type: ignore[union-attr]
    process.stderr.close()  # type: ignore[union-attr]
    return wall, usage.ru_maxrss / 1024


def warm_calls(count: int, ready: dict[str, str], sdk_python: str) -> dict[str, Any]:
    """script.main, a pooled bare requests.Session and the official SDK's client (in its own venv, so in a
    process of its own, driven call by call through a pipe), interleaved in blocks of 50: each variant meets
    the machine and the emulator in the same state."""
    sys.path.insert(0, str(ROOT))
    os.environ["TELNYX_BASE_URL"] = ready["base_url"]
    import requests

    import script

    auth = script.telnyx(apiKey=ready["api_key"])
    session = requests.Session()
    headers = {"Authorization": f"Bearer {ready['api_key']}"}
    calls = iter([new_call(ready) for _ in range(3 * (count + 20))])  # one per call, made before timing

    def through_main() -> float:
        began = time.perf_counter()
        script.main(auth, next(calls), BODY)
        return time.perf_counter() - began

    def bare() -> float:
        began = time.perf_counter()
        url = f"{ready['base_url']}/calls/{next(calls)}/actions/streaming_start"
        response = session.post(url, json=BODY, headers=headers, timeout=10)
        response.raise_for_status()
        response.json()
        return time.perf_counter() - began

    variants: dict[str, Callable[[], float]] = {"script.main": through_main, "bare requests.Session": bare}
    with contextlib.ExitStack() as stack:
        sdk = _sdk_client(ready, sdk_python)
        if sdk is not None:
            stack.callback(sdk.communicate, "\n", 30)  # an empty line ends it

            def through_sdk() -> float:  # the SDK's own timing, without the pipe
                assert sdk.stdin is not None and sdk.stdout is not None
                sdk.stdin.write(next(calls) + "\n")
                sdk.stdin.flush()
                return float(sdk.stdout.readline())

            variants["official SDK client"] = through_sdk
        timings: dict[str, list[float]] = {name: [] for name in variants}
        for fn in variants.values():  # connections, validator, caches: not counted
            for _ in range(20):
                fn()
        block = 50
        for start in range(0, count, block):
            for name, fn in variants.items():
                timings[name] += [fn() for _ in range(min(block, count - start))]
    out: dict[str, Any] = {"calls": count, "variants": {}}
    base = statistics.median(timings["bare requests.Session"])
    for name, values in timings.items():
        values.sort()
        out["variants"][name] = {
            "median_ms": round(statistics.median(values) * 1000, 3),
            "p99_ms": round(values[int(len(values) * 0.99) - 1] * 1000, 3),
            "ratio_to_bare": round(statistics.median(values) / base, 3),
        }
    if "official SDK client" in timings:
        sdk_median = statistics.median(timings["official SDK client"])
        out["script_to_sdk"] = round(statistics.median(timings["script.main"]) / sdk_median, 3)
    return out


@functools.cache
def _imports_telnyx(python: str) -> bool:
    """Whether ``python`` can import the official SDK (asked once a run: the import alone takes seconds)."""
    return subprocess.run([python, "-c", "import telnyx"], capture_output=True).returncode == 0


def _sdk_client(ready: dict[str, str], sdk_python: str) -> subprocess.Popen | None:
    """The official SDK's warm client as a process taking call ids on stdin, or None when ``sdk_python``
    cannot import telnyx."""
    if not _imports_telnyx(sdk_python):
        return None
    env = dict(os.environ, TELNYX_BASE_URL=ready["base_url"], TELNYX_API_KEY=ready["api_key"])
    command = [sdk_python, str(ROOT / "bench" / "official_sdk_warm.py"), json.dumps(BODY)]
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def compile_time() -> dict[str, Any]:
    """Median milliseconds to compile script.py, as every cold job does."""
    source = (ROOT / "script.py").read_text()
    times = []
    for _ in range(60):
        began = time.perf_counter()
        compile(source, "streaming_start.py", "exec")
        times.append(time.perf_counter() - began)
    return {"lines": len(source.splitlines()), "ms_median": round(statistics.median(times) * 1000, 2)}


def report(results: dict[str, Any]) -> None:
    cold, warm = results["cold"], results["warm"]
    print(f"\ncold start: one call in a fresh process, median of {cold['runs']} interleaved runs")
    print(f"  {'variant':18s} {'wall s':>8s} {'x bare':>8s} {'x bare+js':>10s} {'peak MB':>8s}")
    for name, v in cold["variants"].items():
        print(
            f"  {name:18s} {v['wall_s_median']:8.3f} {v['ratio_to_bare']:8.2f} "
            f"{v['ratio_to_bare_jsonschema']:10.2f} {v['rss_mb_median']:8.1f}"
        )
    if "script_to_sdk" in cold:
        print(f"  script.py / official SDK: {cold['script_to_sdk']:.3f}")
    for connection, figures in warm.items():
        print(f"\nwarm, {connection}: {figures['calls']} sequential calls per variant in one process")
        print(f"  {'variant':22s} {'median ms':>10s} {'p99 ms':>8s} {'x bare':>8s}")
        for name, v in figures["variants"].items():
            print(f"  {name:22s} {v['median_ms']:10.3f} {v['p99_ms']:8.3f} {v['ratio_to_bare']:8.2f}")
        if "script_to_sdk" in figures:
            print(f"  script.main / official SDK client: {figures['script_to_sdk']:.3f}")
    compiled = results["compile"]
    print(f"\ncompiling script.py ({compiled['lines']} lines), in every cold job: {compiled['ms_median']:.2f} ms")
    if "silence" in results:
        print("\nsilence: an incoming call's first webhook to its first media frame (cold jobs, the shipped settings)")
        print(f"  {'flow design':34s} {'median s':>9s} {'max s':>7s} {'processes per call':>19s}")
        for name, v in results["silence"].items():
            print(f"  {name:34s} {v['silence_s_median']:9.3f} {v['silence_s_max']:7.3f} {v['processes_per_call']:19d}")
    if "step" in results:
        step = results["step"]
        print(f"\nthe answering step's cold job, median of {step['rounds']} interleaved runs")
        print(f"  step {step['step_s_median']:.3f} s, floor {step['floor_s_median']:.3f} s: x{step['ratio']:.2f}")
        beyond = ", ".join(f"{name} {ms:.1f} ms" for name, ms in step["imports_beyond_floor_ms"].items())
        print(f"  imported beyond the floor (own time): {beyond}")


if __name__ == "__main__":
    sys.exit(main())
