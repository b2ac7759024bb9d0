"""``fused-inpaint studio [INPUT]``: the studio page, served on this machine."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from fused_inpaint.cli.common import UsageError, add_model_options, make_inpainter, positive


def add_parser(commands) -> None:
    studio = commands.add_parser(
        "studio",
        help="a page in the browser: mark an object, track it, inpaint it",
        description="Serves the studio page and prints its address, with the token every "
        "request needs. Open a video there (INPUT, or an upload), draw a box or paint the "
        "object on a frame, track it, inpaint, download. Needs the 'studio' extra: "
        "pip install 'fused_inpaint[studio]'.",
    )
    studio.add_argument(
        "input", type=Path, nargs="?", metavar="INPUT", help="video file or frame folder to open"
    )
    studio.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    studio.add_argument(
        "--port", type=int, default=8765, help="0 for a free one (default: %(default)s)"
    )
    studio.add_argument(
        "--max-upload-mb", type=positive, default=512, metavar="MB", help="upload size limit"
    )
    add_model_options(studio)
    studio.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    try:
        from fused_inpaint.studio import Studio, StudioServer, is_local
        from fused_inpaint.studio.videos import ClipError
    except ImportError as error:
        raise UsageError(
            f"the studio needs the 'studio' extra ({error.name} is missing): "
            "pip install 'fused_inpaint[studio]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    if args.input is not None and not args.input.exists():
        raise UsageError(f"input not found: {args.input}")
    offline = make_inpainter(args, "offline", "dis")  # the options checked, and loaded, now

    def inpainter(mode: str):
        return offline if mode == "offline" else make_inpainter(args, mode, "dis")

    studio = Studio(
        inpainter,
        device=args.device or "default",
        max_upload_bytes=args.max_upload_mb * 2**20,
    )
    try:
        server = StudioServer(studio, args.host, args.port, args.input)
    except ClipError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    if not is_local(args.host):
        warnings.warn(
            f"listening on {args.host}: other machines can reach the studio; anyone with the "
            "token can read the opened clip and run jobs",
            stacklevel=1,
        )
    print("fused-inpaint studio: open this address in a browser (Ctrl-C stops it):")
    for url in server.urls:
        print(f"    {url}", flush=True)
    server.run()
    return 0
