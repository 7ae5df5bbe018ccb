"""The command line and the form generator of script.py: for a checkout, never run by Windmill.

``python script.py CALL_CONTROL_ID --body JSON`` loads this module and hands it script.py's own
module (already compiled), so nothing is compiled twice; ``./dev schema`` writes script.schema.json
with ``windmill_schema``. Windmill deploys script.py alone: a job never imports this file.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import sys
from types import ModuleType
from typing import Any, Dict, List, NoReturn

EXIT_INPUT, EXIT_API, EXIT_NO_ANSWER = 2, 3, 4
KEY_FIX = (
    "export TELNYX_API_KEY=KEY... in this shell (your Telnyx API key, from portal.telnyx.com > Account settings > "
    "Keys)."
)
# What to do about a refused key, in the shell's words (the job's message speaks of the telnyx resource)
AUTH_FIX = (
    "Authentication failed: TELNYX_API_KEY is wrong or revoked. Create a key at portal.telnyx.com > "
    "Account settings > Keys and export TELNYX_API_KEY=KEY... again."
)


def _script() -> ModuleType:
    import script  # a checkout's script.py, when this module is used on its own (./dev schema, tests)

    return script


# The form of main's arguments other than body (whose form is script.BODY_SCHEMA); their defaults come from
# main's signature. Only the form needs these: they live here, not in what a Windmill job compiles.
ARGUMENTS: Dict[str, Dict[str, Any]] = {
    "auth": {"type": "object", "format": "resource-telnyx", "description": "Your telnyx resource (an API key)."},
    "call_control_id": {
        "type": "string",
        "originalType": "string",
        "description": (
            "The call to stream, from the webhook that started the flow: "
            "data.payload.call_control_id of call.answered (e.g. v3:9X2vxPDF...)."
        ),
        "placeholder": "v3:...",
    },
    "timeout_s": {
        "type": "number",
        "description": "Seconds one attempt may wait for Telnyx's answer (connecting: at most 3.05).",
    },
    "deadline_s": {
        "type": "number",
        "description": "Seconds the whole call may take: connecting, reading, retries and their waits.",
    },
    "max_retries": {
        "type": "integer",
        "description": (
            "Retries after a failed attempt (no answer, 408, 429, 500, 502, 503, 504). Safe: every "
            "attempt carries the same command_id. 0 turns retries off."
        ),
    },
}


def windmill_schema(script: ModuleType | None = None) -> Dict[str, Any]:
    """script.schema.json: the arguments' form, from ARGUMENTS, script.BODY_SCHEMA and main's signature."""
    script = script or _script()
    params = inspect.signature(script.main).parameters
    properties = {}
    for name, param in params.items():
        prop = dict(script.BODY_SCHEMA if name == "body" else ARGUMENTS[name])
        prop["default"] = None if param.default is inspect.Parameter.empty else param.default
        properties[name] = dict(sorted(prop.items()))  # Windmill's CLI sorts each property's keys
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "order": list(params),
        "properties": properties,
        "required": [n for n, p in params.items() if p.default is inspect.Parameter.empty],
    }


class _Parser(argparse.ArgumentParser):
    """argparse, but a refused value is never echoed: it may be the API key, pasted in the wrong place."""

    def error(self, message: str) -> NoReturn:
        if "invalid" in message and " value:" in message:  # "invalid float value: '<what was given>'"
            message = message.split(" value:", 1)[0] + " value (not shown)"
        key = (os.environ.get("TELNYX_API_KEY") or "").strip()
        if len(key) >= 8 and key.lower() in message.lower():  # "unrecognized arguments: <the key>"
            message = message.split(":", 1)[0] + ": (not shown: it holds your API key)"
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def cli(argv: List[str] | None = None, script: ModuleType | None = None) -> int:
    """``python script.py CALL_CONTROL_ID --body JSON``; the key comes from TELNYX_API_KEY."""
    script = script or _script()
    parser = _Parser(
        prog="script.py",
        description="Start streaming a live Telnyx call's audio to your WebSocket server.",
        epilog=(
            "The API key is read from TELNYX_API_KEY; TELNYX_BASE_URL overrides the API address. "
            f"Exit codes: 0 ok, {EXIT_INPUT} bad input (nothing sent), {EXIT_API} Telnyx answered "
            f"with an error, {EXIT_NO_ANSWER} no answer. Example: TELNYX_API_KEY=KEY... python "
            'script.py v3:abc --body \'{"stream_url": "wss://example.com/media"}\''
        ),
    )
    parser.add_argument("call_control_id", nargs="?", help="data.payload.call_control_id of call.answered")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--body", help="the streaming_start body as JSON")
    source.add_argument("--body-file", metavar="PATH", help="read the body from a JSON file ('-' for stdin)")
    default = {name: p.default for name, p in inspect.signature(script.main).parameters.items()}
    timeout, deadline, retries = default["timeout_s"], default["deadline_s"], default["max_retries"]
    parser.add_argument("--timeout", type=float, default=timeout, help=f"seconds per attempt (default {timeout:g})")
    parser.add_argument(
        "--deadline", type=float, default=deadline, help=f"seconds in all, retries included (default {deadline:g})"
    )
    parser.add_argument(
        "--retries", type=int, default=retries, help=f"retries after a failed attempt (default {retries})"
    )
    parser.add_argument("--print-schema", action="store_true", help="print script.schema.json and exit")
    args = parser.parse_args(argv)
    if args.print_schema:
        print(json.dumps(windmill_schema(script), indent=2, ensure_ascii=False))
        return 0
    try:
        if args.call_control_id is None:
            raise script.TelnyxInputError(
                "call_control_id is missing: python script.py CALL_CONTROL_ID --body JSON", "call_control_id"
            )
        key = script.check_key(os.environ.get("TELNYX_API_KEY"), "TELNYX_API_KEY", KEY_FIX)
        if args.call_control_id.strip() == key:
            raise script.TelnyxInputError(
                "The CALL_CONTROL_ID argument is your API key (not shown): the two look swapped. Pass the "
                "call's call_control_id as the argument, and the key in TELNYX_API_KEY.",
                "call_control_id",
            )
        body = _body(script, args.body, args.body_file, key)
        result = script.main(
            {"apiKey": key},
            args.call_control_id,
            body,
            timeout_s=args.timeout,
            deadline_s=args.deadline,
            max_retries=args.retries,
        )
    except script.TelnyxInputError as exc:
        return _fail(script, exc, EXIT_INPUT)
    except script.TelnyxAPIError as exc:
        return _fail(script, exc, EXIT_API)
    except script.TelnyxConnectionError as exc:
        return _fail(script, exc, EXIT_NO_ANSWER)
    try:
        text = json.dumps(result, allow_nan=False)
    except ValueError:  # 1e400 parses as inf: printing it would not be JSON
        text = json.dumps(_finite(result))
    print(text)
    return 0


def _fail(script: ModuleType, error: Exception, code: int) -> int:
    """The error on stderr, in a shell's words: the job's advice for a refused key speaks of the resource,
    and main's parameters are named as the options the user typed."""
    text = str(error).replace(script.HINTS["10009"], AUTH_FIX)
    quoted = getattr(error, "response_text", "") or ""  # Telnyx's own answer is quoted as it came
    parts = text.split(quoted, 1) if quoted and quoted in text else [text]
    print(f"error: {quoted.join(_options(part) for part in parts)}", file=sys.stderr)
    return code


# main's parameters -> the options of this command line that set them (an input error names one in
# its ``field``; the advice of the other errors names them in its text)
OPTIONS = {"timeout_s": "--timeout", "deadline_s": "--deadline", "max_retries": "--retries"}
_PARAMETER = re.compile(r"\b(" + "|".join(OPTIONS) + r")\b")


def _options(text: str) -> str:
    return _PARAMETER.sub(lambda found: OPTIONS[found.group(1)], text)


def _finite(value: Any) -> Any:
    """A JSON value with infinities as null (as JSON.stringify writes them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _body(script: ModuleType, text: str | None, path: str | None, key: str) -> Any:
    if path is not None:
        shown = "the path (not shown: it is your API key)" if key in path else path
        try:
            text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        except OSError as exc:
            raise script.TelnyxInputError(f"--body-file: cannot read {shown}: {exc.strerror}", "body") from None
        except UnicodeDecodeError:
            raise script.TelnyxInputError(
                f"--body-file: {shown} is not UTF-8 text: save it as UTF-8 JSON.", "body"
            ) from None
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise script.TelnyxInputError("body is nested too deep to be a streaming_start body.", "body") from None
    except ValueError as exc:
        raise script.TelnyxInputError(
            f'body is not valid JSON ({exc}). Example: --body \'{{"stream_url": "wss://example.com/media"}}\'',
            "body",
        ) from None


if __name__ == "__main__":
    sys.exit(cli())
