"""``python -m emulator``: the Call Control API on 127.0.0.1, with one live call ready to stream.

Prints ONE JSON line when ready: {"base_url": ..., "api_key": ..., "call_control_id": ...};
runs until SIGINT or SIGTERM, then exits 0.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
import threading

from audio_codecs import SAMPLE_RATES

from . import DEFAULT_API_KEY, Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free port)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help=f"the key it accepts (default {DEFAULT_API_KEY})")
    parser.add_argument("--audio", metavar="FILE.wav", help="16-bit WAV the caller says (default: a tone sequence)")
    parser.add_argument("--codec", default="PCMU", choices=sorted(SAMPLE_RATES), help="the call's codec (default PCMU)")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds the caller talks once streaming starts (default 60)"
    )
    parser.add_argument(
        "--listen",
        type=float,
        default=1.5,
        help="seconds the caller first listens, silent, so a bot's greeting plays before any barge-in (default 1.5)",
    )
    parser.add_argument("--webhook-url", help="where to POST the calls' webhooks (default: none are sent)")
    parser.add_argument("--fast", action="store_true", help="send media as fast as possible, not in real time")
    parser.add_argument("--no-media", action="store_true", help="Call Control only: never open a WebSocket")
    parser.add_argument(
        "--no-keep-alive", action="store_true", help="close every connection after its answer (clients reconnect)"
    )
    parser.add_argument("--record-dir", help="save the audio your server sends back, one WAV per stream")
    parser.add_argument("--calls", type=int, default=1, help="live calls ready to stream (default 1)")
    parser.add_argument(
        "--call-control-id", metavar="ID", help="the first call's call_control_id (default: a random v3:... id)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the JSON line (no narration on stderr)")
    args = parser.parse_args(argv)

    try:
        emulator = Emulator(
            port=args.port,
            api_key=args.api_key,
            media=not args.no_media,
            fast=args.fast,
            record_dir=args.record_dir,
            keep_alive=not args.no_keep_alive,
        )
    except OSError as error:
        why = "is in use (another server listens there)" if error.errno == errno.EADDRINUSE else f"fails: {error}"
        print(
            f"python -m emulator: port {args.port} on 127.0.0.1 {why}: stop it, or pick another --port", file=sys.stderr
        )
        return 1
    if not args.quiet:  # what happens, line by line, on stderr (stdout keeps only the JSON line)
        emulator.narrate(lambda line: print(line, file=sys.stderr, flush=True))
    emulator.start()
    options = {"codec": args.codec, "audio": args.audio, "webhook_url": args.webhook_url, "duration_s": args.duration}
    options["listen_s"] = args.listen
    emulator.backend.call_defaults = {k: v for k, v in options.items() if v is not None}  # the page's calls too
    call_ids = [emulator.create_call(**options) for _ in range(max(args.calls, 1) - 1)]
    call_ids.insert(0, emulator.create_call(call_control_id=args.call_control_id, **options))
    call_id = call_ids[0]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ready: dict[str, object] = {"base_url": emulator.base_url, "api_key": emulator.api_key, "call_control_id": call_id}
    ready["webhook_public_key"] = emulator.webhook_public_key  # verifies the telnyx-signature-ed25519 header
    ready["ui_url"] = emulator.ui_url  # a page to watch it all, in a browser
    if len(call_ids) > 1:
        ready["call_control_ids"] = call_ids
    print(json.dumps(ready))
    sys.stdout.flush()
    emulator.backend.say(
        f"emulator ready at {emulator.base_url}: {len(call_ids)} call(s); another: "
        f"curl -s -X POST {emulator.base_url.rsplit('/v2', 1)[0]}/_emulator/calls"
    )
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
