"""The shipped webhook flow, run on this machine against your own stream server: ``./dev flow``.

    ./dev flow --stream-url ws://127.0.0.1:8765                 the shipped flow, its shipped settings
    ./dev flow --stream-url ws://127.0.0.1:8765/ws              the pipecat bot (./dev bot): its path is /ws
    ./dev flow --flow ~/my-workspace/f/telnyx/start_stream_on_answer.flow/flow.yaml   the flow you edited

The emulator plays Telnyx: its calls ring, and their webhooks (signed with the emulator's key) go to
the flow, run as Windmill runs it (tests/windmill: Windmill's webhook input, the flow's branch
predicate evaluated in the flow's own run, each step a job: a cold Python process, the deployed
script imported by path through a stand-in for Windmill's API). The flow answers each call and
streams it to your server. Settings come from the flow file (the shipped one, or an exported
flow.yaml you edited), then from the flags, checked first with the script's own checks (an
``http://`` URL is refused before any call rings); ``public_key`` and ``auth`` are always the
emulator's (its signing key, its API key). Ring a call from the emulator's page, or with the curl
command printed; each flow run is printed as it ends (its jobs, what the step did, or why it
refused), and each call's summary as the call ends (what the caller heard, the emulator's notes).
A call whose stream failed is hung up, as its caller hearing nothing would. ``--once`` rings
``--calls`` calls, waits for them to end, and exits 0 only when every call streamed and no run failed.

From Python (a test, a pipecat bot's own check): ``with LocalFlow(stream_url=...) as flow:``, then
``flow.ring()``, ``flow.wait_call(call)``, ``flow.runs(call)``, ``flow.emulator`` (its calls, streams
and recordings).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))  # the Windmill harness the tests use (tests/windmill)

from windmill.flows import FlowRun, FlowRunner, _lock_file, find_module  # noqa: E402
from windmill.harness import site  # noqa: E402
from windmill.standin import StandIn  # noqa: E402

import script  # noqa: E402  (the product's own checks of the stream settings)
from audio_codecs import SAMPLE_RATES  # noqa: E402
from emulator import Emulator  # noqa: E402
from emulator.exceptions import CallEnded  # noqa: E402

SHIPPED = ROOT / "deploy" / "start_stream_on_answer.flow" / "flow.yaml"
FLOW_PATH = "f/telnyx/start_stream_on_answer"  # where the README deploys it
SCRIPT_PATH = "f/telnyx/streaming_start"  # the script the step imports
TOKEN = "local-flow-webhook-token"  # noqa: S105 - the stand-in's webhook token, on 127.0.0.1 only
URL_OPTIONS = "raw=true&include_header=telnyx-signature-ed25519,telnyx-timestamp"
PLACEHOLDER = "wss://your-server.example.com/media"  # the shipped stream_url: to be replaced
FAILED_HANGUP = "the stream failed, so the caller, hearing nothing, hung up"  # the call's ended_why
INSTALLING = "./dev flow: first run: installing the flow step's packages with pip (about 15 s; cached after)..."


class FlowFileError(ValueError):
    """The flow file or a setting cannot be used; the message says which and how to fix it."""


def load_flow(path: Path) -> dict[str, Any]:
    """A flow.yaml as windmill-cli pushes it: every ``!inline <file>`` replaced by that file's text
    (relative to the flow's folder)."""
    path = path.expanduser()
    if path.is_dir():
        path = path / "flow.yaml"
    try:
        flow = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise FlowFileError(f"cannot read the flow {path}: {error}") from None

    def inline(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: inline(v) for k, v in value.items()}
        if isinstance(value, list):
            return [inline(v) for v in value]
        if isinstance(value, str) and value.startswith("!inline "):
            file = path.parent / value[len("!inline ") :].strip()
            try:
                return file.read_text(encoding="utf-8")
            except OSError as error:
                raise FlowFileError(f"{path} inlines {file}, which cannot be read: {error}") from None
        return value

    flow = inline(flow)
    try:
        find_module(flow, "event")
    except (KeyError, TypeError):
        raise FlowFileError(f"{path} has no step with id 'event': is it start_stream_on_answer's flow.yaml?") from None
    return flow


class LocalFlow:
    """The emulator, a stand-in for Windmill's API holding the flow and the script, the flow runner."""

    def __init__(
        self,
        stream_url: str | None = None,
        stream_options: dict[str, Any] | None = None,
        flow: Path = SHIPPED,
        settings: dict[str, Any] | None = None,
        port: int = 0,
        call_options: dict[str, Any] | None = None,
        record_dir: str | Path | None = None,
        on_run: Callable[[str, str, FlowRun | BaseException], None] | None = None,
        narrate: Callable[[str], None] | None = None,
    ) -> None:
        """``settings``: any of the step's settings by name (``voice_bot``, ``answer_incoming``, ...);
        ``call_options``: each call's emulator options (``duration_s``, ``listen_s``, ``audio``,
        ``codec``); ``on_run(event type, call_control_id, outcome)`` is told of each run as it ends."""
        self.flow = load_flow(Path(flow))
        transforms = find_module(self.flow, "event")["value"]["input_transforms"]
        wanted = dict(settings or {})
        if stream_url is not None:
            wanted["stream_url"] = stream_url
        if stream_options is not None:
            wanted["stream_options"] = stream_options
        for name, value in wanted.items():
            if name not in transforms:
                raise FlowFileError(f"the flow's step has no setting {name!r}; it has {sorted(transforms)}")
            transforms[name] = {"type": "static", "value": value}
        url = transforms["stream_url"].get("value")
        if not url or url == PLACEHOLDER:
            raise FlowFileError(
                "stream_url is not set: give your server's WebSocket URL, e.g. --stream-url ws://127.0.0.1:8765"
            )
        options = transforms.get("stream_options", {}).get("value")
        try:  # what the step would refuse on every call, refused now, before a call rings
            script.check_body({**(options if isinstance(options, dict) else {}), "stream_url": url})
        except script.TelnyxInputError as error:
            raise FlowFileError(f"the flow's stream settings would be refused on every call: {error}") from None
        self.settings = transforms
        self.emulator = Emulator(port=port, record_dir=record_dir)
        if narrate is not None:
            self.emulator.narrate(narrate)
        self.api = StandIn()
        self.call_options = {"direction": "incoming", **(call_options or {})}
        self._on_run = on_run
        self._started = False

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> LocalFlow:
        transforms = self.settings
        transforms["public_key"] = {"type": "static", "value": self.emulator.webhook_public_key}  # it signs
        auth = transforms.get("auth", {}).get("value")
        resource = auth[len("$res:") :] if isinstance(auth, str) and auth.startswith("$res:") else "u/you/telnyx"
        transforms["auth"] = {"type": "static", "value": f"$res:{resource}"}
        step = find_module(self.flow, "event")["value"]
        # the step's packages, installed before the first call (once: they are cached)
        site(_lock_file(step.get("lock") or ""), announce=lambda: print(INSTALLING, file=sys.stderr, flush=True))
        self.emulator.start()
        self.api.__enter__()
        self._started = True
        self.api.tokens.add(TOKEN)
        self.api.workspace.scripts[SCRIPT_PATH] = {"content": (ROOT / "script.py").read_text(encoding="utf-8")}
        self.api.workspace.flows[FLOW_PATH] = self.flow
        self.api.runner = FlowRunner(
            self.api.workspace.scripts,
            env={"TELNYX_BASE_URL": self.emulator.base_url},
            resources={resource: {"apiKey": self.emulator.api_key}},
            windmill=(self.api.base_url, TOKEN),
        )
        self.api.on_run = self._ended
        # a call from the page or POST /_emulator/calls rings in to the flow, as --calls' calls do
        self.emulator.backend.call_defaults = {**self.call_options, "webhook_url": self.webhook_url}
        return self

    def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self.emulator.backend.call_defaults = {}
        self.api.join_runs(timeout=60)  # runs under way finish: no job is left running
        self.api.__exit__(None, None, None)
        self.emulator.stop()

    def __enter__(self) -> LocalFlow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -----------------------------------------------------------------------------------
    @property
    def webhook_url(self) -> str:
        """The flow's webhook, as the README gives it to Telnyx."""
        return f"{self.api.base_url}api/w/{StandIn.WORKSPACE}/jobs/run/f/{FLOW_PATH}?token={TOKEN}&{URL_OPTIONS}"

    @property
    def ring_command(self) -> str:
        """A shell command that rings one more call (the page's "New call" does the same)."""
        return f"curl -s -X POST {self.emulator.base_url.rsplit('/v2', 1)[0]}/_emulator/calls -d '{{}}'"

    def ring(self, **options: Any) -> str:
        """A new call, ringing in to the flow (``direction="outgoing"``: a leg your app dialled, its callee
        picking up after ``pickup_after_s``); returns its call_control_id."""
        return self.emulator.ring(**{**self.call_options, **options, "webhook_url": self.webhook_url})

    def runs(self, call_control_id: str) -> list[tuple[str, FlowRun | BaseException]]:
        """(event type, outcome) of each ended run of the call's events, in the order they ended."""
        return [
            (args["data"]["event_type"], outcome)
            for args, outcome in self.api.wait_runs(0)
            if isinstance(args.get("data"), dict)
            and isinstance(args["data"].get("payload"), dict)
            and args["data"]["payload"].get("call_control_id") == call_control_id
        ]

    def wait_call(self, call_control_id: str, timeout: float = 120.0) -> list[tuple[str, FlowRun | BaseException]]:
        """Wait until the call has ended, its streams have stopped and the run of each of its events has
        ended; return those runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ended(call_control_id):
                return self.runs(call_control_id)
            time.sleep(0.05)
        raise TimeoutError(f"call {call_control_id} had not ended, with every run of its events, after {timeout} s")

    def ended(self, call_control_id: str) -> bool:
        """Whether the call has ended, its streams have stopped and the run of each of its events has ended."""
        call = self.emulator.call(call_control_id)
        sent = self.emulator.webhooks.events(call_control_id)
        streams_done = all(s.done.is_set() for s in call.streams) if self.emulator.media else True
        return call.state == "ended" and streams_done and len(self.runs(call_control_id)) >= len(sent)

    def hang_up_failed(self, call_control_id: str) -> bool:
        """Hang up the call if it is answered and a stream of it failed, as its caller, who hears nothing,
        would (the emulator's caller talks only once a stream runs: it would wait on the line forever).
        Return whether it did."""
        call = self.emulator.call(call_control_id)
        if call.state != "answered" or not any(s.state == "failed" for s in call.streams):
            return False
        try:
            self.emulator.backend.hangup(call_control_id, by="caller", why=FAILED_HANGUP)
        except CallEnded:  # it ended meanwhile
            return False
        return True

    def _ended(self, args: dict[str, Any], outcome: FlowRun | BaseException) -> None:
        if self._on_run is None:
            return
        data = _object(args.get("data"))
        payload = _object(data.get("payload"))
        self._on_run(str(data.get("event_type", "(not an event)")), str(payload.get("call_control_id", "")), outcome)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def describe(event_type: str, call_control_id: str, outcome: FlowRun | BaseException) -> str:
    """One line for a run: the event, its jobs (each a Windmill run of a script: a Python process), then
    what the step did, or why it refused."""
    head = f"{time.strftime('%H:%M:%S')} {event_type:18s} {call_control_id[:14]:14s}"
    if isinstance(outcome, BaseException):
        return f"{head} the flow runner broke: {outcome!r}"
    jobs = f"{outcome.processes or 'no'} job{'' if outcome.processes == 1 else 's'}"
    result = _object(outcome.result)
    if outcome.status == "failure":
        error = _object(result.get("error")) or result
        return f"{head} {jobs}, FAILED: {error.get('name', 'error')}: {error.get('message', outcome.result)}"
    if not outcome.processes:
        return f"{head} no job: the flow's route ends the run (nothing to do)"
    action = result.get("action", "?")
    done = "nothing sent" if action == "none" else str(action)  # a stop Windmill labels "skipped"
    return f"{head} {jobs}, {done}: {result.get('why', '')}"


def summary(flow: LocalFlow, call_control_id: str) -> tuple[bool, list[str]]:
    """Whether the call was answered and streamed with no run failing, and lines saying what happened."""
    call = flow.emulator.call(call_control_id)
    runs = flow.runs(call_control_id)
    failed = [kind for kind, o in runs if isinstance(o, BaseException) or o.status == "failure"]
    jobs = sum(o.processes for _, o in runs if not isinstance(o, BaseException))
    lines = [f"call {call_control_id}: {len(runs)} events, {jobs} job{'' if jobs == 1 else 's'}; {call.ended_why}"]
    for stream in call.streams:
        heard = len(stream.played) / stream.played_rate
        lines.append(
            f"  stream {stream.stream_id[:8]}: {stream.state}"
            + (f" ({stream.failure_reason})" if stream.failure_reason else "")
            + f", {sum(stream.frames_sent.values())} frames sent to your server, the caller heard {heard:.2f} s of it"
        )
        lines += [f"  note: {w.render(stream.ignored)}" for w in stream.warnings.values()]
    if failed:
        lines.append(f"  failed runs: {', '.join(failed)}")
    if not call.streams:
        lines.append("  no stream started")
    ok = not failed and bool(call.streams) and all(s.state != "failed" for s in call.streams)
    return ok, lines


def verdict(flow: LocalFlow, call_control_id: str) -> str:
    """Why a call did not stream, in a few words."""
    call = flow.emulator.call(call_control_id)
    failed = [s for s in call.streams if s.state == "failed"]
    if failed:
        return (
            f"its stream failed ({failed[0].failure_reason}): check the host, port and path of the stream_url "
            "and that your server there accepts the WebSocket handshake"
        )
    broken = [k for k, o in flow.runs(call_control_id) if isinstance(o, BaseException) or o.status == "failure"]
    if broken:
        return f"the run of {broken[0]} failed (its line above says why)"
    return "no stream started" if not call.streams else "it streamed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev flow", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stream-url",
        help="your WebSocket server, e.g. ws://127.0.0.1:8765 (pipecat's bot: .../ws), the flow's stream_url",
    )
    parser.add_argument("--flow", default=str(SHIPPED), help="a flow.yaml (default: the shipped one)")
    example = '{"stream_codec": "PCMU"}'
    parser.add_argument("--stream-options", metavar="JSON", help=f"the flow's stream_options, e.g. '{example}'")
    parser.add_argument("--recorder", action="store_true", help="voice_bot false: both tracks, no talk-back")
    parser.add_argument("--port", type=int, default=0, help="the emulator's port on 127.0.0.1 (default: any free)")
    parser.add_argument("--calls", type=int, default=1, help="incoming calls to ring at once (default 1; 0: none)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds each caller talks (default 10)")
    parser.add_argument("--listen", type=float, default=1.5, help="seconds each caller first listens (default 1.5)")
    parser.add_argument(
        "--codec", default="PCMU", choices=sorted(SAMPLE_RATES), help="the callers' codec (default PCMU)"
    )
    parser.add_argument("--audio", metavar="FILE.wav", help="16-bit WAV the caller says (default: a tone sequence)")
    parser.add_argument("--record-dir", help="save what the caller hears (your server's audio), one WAV per stream")
    parser.add_argument("--once", action="store_true", help="ring --calls calls, wait for them to end, then exit")
    args = parser.parse_args(argv)

    options = None
    if args.stream_options is not None:
        try:
            options = json.loads(args.stream_options)
        except ValueError as error:
            parser.error(f"--stream-options is not JSON ({error}): give an object, e.g. '{example}'")
        if not isinstance(options, dict):
            parser.error(f"--stream-options must be a JSON object of stream fields, e.g. '{example}'")
    printing = threading.Lock()

    def say(line: str, to: Any = sys.stdout) -> None:
        with printing:
            print(line, file=to, flush=True)

    call_options = {"duration_s": args.duration, "listen_s": args.listen, "codec": args.codec}
    if args.audio:
        call_options["audio"] = args.audio
    try:
        flow = LocalFlow(
            stream_url=args.stream_url,
            stream_options=options,
            flow=Path(args.flow),
            settings={"voice_bot": False} if args.recorder else None,
            port=args.port,
            call_options=call_options,
            record_dir=args.record_dir,
            on_run=lambda kind, call, outcome: say(describe(kind, call, outcome)),
            narrate=lambda line: say(f"  emulator: {line}", sys.stderr),
        )
    except FlowFileError as error:
        print(f"./dev flow: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the emulator's --port
        print(
            f"./dev flow: cannot listen on 127.0.0.1:{args.port} ({error.strerror}): pick another --port",
            file=sys.stderr,
        )
        return 1
    with flow:
        settings = {k: t.get("value") for k, t in flow.settings.items() if t["type"] == "static" and k != "public_key"}
        say(f"the flow {args.flow}, run as Windmill runs it; its settings: {json.dumps(settings)}")
        say("(public_key and auth are the emulator's: it signs the webhooks and takes the commands)")
        say(f"its webhook: {flow.webhook_url}")
        say(f"the emulator: {flow.emulator.base_url}; watch and ring calls at {flow.emulator.ui_url}")
        ended: dict[str, bool] = {}  # each call summed up as it ends: whether it streamed
        changed = threading.Condition()
        stopping = threading.Event()

        def watch() -> None:
            """Hang up each call whose stream failed; print each call's summary once it has ended."""
            while not stopping.wait(0.05):
                with flow.emulator.backend.lock:
                    calls = [c for c in flow.emulator.backend.calls if c not in ended]
                for call in calls:
                    flow.hang_up_failed(call)
                    if flow.ended(call):
                        good, lines = summary(flow, call)
                        for line in lines:
                            say(line)
                        with changed:
                            ended[call] = good
                            changed.notify_all()

        watcher = threading.Thread(target=watch, name="local-flow-calls", daemon=True)
        watcher.start()
        try:
            calls = [flow.ring() for _ in range(max(args.calls, 0))]
            if not args.once:
                say(f"ring another call: {flow.ring_command}   (Ctrl-C to stop)")
                signal.signal(signal.SIGTERM, _interrupt)  # stopped like Ctrl-C: the runs under way finish
                try:
                    threading.Event().wait()
                except KeyboardInterrupt:
                    say("stopping: the runs under way finish first")
                    return 0
            limit = args.duration + args.listen + 120  # a call that rings out ends in 30 s; a stream plays on
            with changed:
                if not changed.wait_for(lambda: all(c in ended for c in calls), timeout=limit):
                    waiting = ", ".join(c for c in calls if c not in ended)
                    say(f"./dev flow --once: calls still not ended after {limit:g} s: {waiting}")
                    return 1
            bad = [c for c in calls if not ended[c]]
            if not bad:
                say(f"./dev flow --once: {len(calls)} call(s), each answered and streaming, no run failed")
                return 0
            say(f"./dev flow --once: {len(bad)} of {len(calls)} call(s) did not stream: {verdict(flow, bad[0])}")
            return 1
        finally:
            stopping.set()
            watcher.join(10)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
