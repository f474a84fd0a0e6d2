"""``loco stream serve``: the streaming gateway (every guest's screen and sound as WebRTC, input
back), and the web client's one origin."""

import argparse
import asyncio
import os
from pathlib import Path

import loco_lan
from loco_lan.errors import LocoError


def default_web_root() -> Path | None:
    """$LOCO_WEB_ROOT (the runtime image sets it), else the web client built in this checkout."""
    if os.environ.get("LOCO_WEB_ROOT"):
        return Path(os.environ["LOCO_WEB_ROOT"])
    built = Path(loco_lan.__file__).resolve().parents[2] / "web" / "dist"
    return built if (built / "index.html").is_file() else None


def register(subparsers) -> None:
    parser = subparsers.add_parser("stream", help="the WebRTC streaming gateway")
    actions = parser.add_subparsers(dest="stream_action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="stream every guest of instances.json to browsers")
    serve.add_argument("--instances", required=True, type=Path, help="instances.json (each entry's vncUrl)")
    serve.add_argument("--webrtc", type=Path, help="webrtc.json handed to clients (default: beside instances)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="0 picks a free port (logged)")
    serve.add_argument("--token-file", type=Path,
                       help="the player token: only viewers presenting it may send input (default: anyone)")
    serve.add_argument("--focus-url", help="the focus service (e.g. http://127.0.0.1:8090): followed for frame "
                                           "rates and passed through at /api/active and /active")
    serve.add_argument("--web-root", type=Path, default=default_web_root(),
                       help="the built web client, served at / (default: $LOCO_WEB_ROOT, else the checkout's web/dist)")
    serve.add_argument("--vnc-password-file", type=Path, help="the guests' VNC password")
    serve.add_argument("--turn-secret-file", type=Path,
                       help="coturn's static-auth-secret: TURN servers of webrtc.json get short-lived credentials")
    serve.add_argument("--turn-ttl", type=int, default=3600, help="seconds those credentials last")
    video = serve.add_argument_group("video")
    video.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    video.add_argument("--bitrate", type=int, default=2_500_000, help="bits per second per guest, at most")
    video.add_argument("--speed", type=int, default=12, help="encoder speed, 4 (better) .. 16 (cheaper)")
    video.add_argument("--focused-fps", type=float, default=30.0)
    video.add_argument("--unfocused-fps", type=float, default=5.0)
    video.add_argument("--refresh", type=float, default=0.5,
                       help="seconds between encodes of a screen that does not change")
    serve.add_argument("--no-audio", action="store_true", help="video only")
    serve.add_argument("--ice-address", action="append", default=[], metavar="ADDRESS",
                       help="offer ICE host candidates on this address only (repeatable; e.g. the pod IP, "
                            "or 127.0.0.1 for a browser on this machine)")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import logging

    from loco_lan.focus.client import read_token
    from loco_lan.stream.gateway import Gateway, pin_host_addresses, serve
    from loco_lan.stream.guest import GuestSettings
    from loco_lan.stream.media import VideoSettings

    for name, value, low in (("--focused-fps", args.focused_fps, 0.1), ("--unfocused-fps", args.unfocused_fps, 0.1),
                             ("--refresh", args.refresh, 0.05)):
        if value < low:
            raise LocoError(f"{name} must be at least {low:g}")
    if not 4 <= args.speed <= 16:
        raise LocoError("--speed must be from 4 to 16")
    password = read_token(args.vnc_password_file) if args.vnc_password_file else None
    settings = GuestSettings(
        focused_fps=args.focused_fps, unfocused_fps=args.unfocused_fps, refresh=args.refresh,
        video=VideoSettings(codec=args.codec, bitrate=args.bitrate, speed=args.speed),
        audio=not args.no_audio, password=password,
    )
    if args.ice_address:
        pin_host_addresses(args.ice_address)
    for chatty in ("aioice", "aiortc"):  # at DEBUG they log every packet: -v is for the gateway's own lines
        logging.getLogger(chatty).setLevel(logging.INFO)
    gateway = Gateway(
        args.instances, args.webrtc, settings,
        token=read_token(args.token_file) if args.token_file else None,
        focus_url=args.focus_url, web_root=args.web_root,
        turn_secret=read_token(args.turn_secret_file) if args.turn_secret_file else None, turn_ttl=args.turn_ttl,
    )
    if args.web_root and not (args.web_root / "index.html").is_file():
        raise LocoError(f"--web-root {args.web_root} has no index.html: build the web client (npm run build)")
    gateway.load()
    asyncio.run(serve(gateway, args.host, args.port))
    return 0
