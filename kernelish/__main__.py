"""The ``kernelish`` command (``python -m kernelish``).

``kernelish demo`` runs the demo daemon (see :mod:`kernelish.demo`);
``kernelish status|peek|stop PIDFILE`` talk to a running daemon (see
:mod:`kernelish._control`); ``kernelish serve MODULE:APP`` runs a WSGI
application on the pre-forking Daemon (see :mod:`kernelish.wsgi`).
"""

from __future__ import annotations

import argparse
import sys

from kernelish import _control, wsgi

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernelish", description="Perl's POE and POE::Component::Daemon, in Python."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run a pre-forking daemon under client traffic and watch its scoreboard",
        description="Start a daemon on 127.0.0.1, drive traffic at it for a few seconds "
        "while drawing its scoreboard, stop it with SIGTERM and print a summary.",
    )
    demo.add_argument(
        "--forking", action="store_true", help="post-forking mode (a child per connection)"
    )
    demo.add_argument("--serve", action="store_true", help="no clients: keep serving until Ctrl-C")
    demo.add_argument("--port", type=int, default=0, help="port to listen on (default: any)")
    demo.add_argument(
        "--seconds", type=float, default=4.0, help="how long the clients run (default: 4)"
    )
    demo.add_argument(
        "--clients", type=int, default=4, help="concurrent client connections (default: 4)"
    )
    _control.add_subcommands(commands)
    wsgi.add_subcommand(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kernelish`` console script."""
    args = _parser().parse_args(argv)
    if args.command in _control.COMMANDS:
        return _control.run(args)
    if args.command == wsgi.COMMAND:
        return wsgi.run_command(args)
    from kernelish.demo import DemoOptions, run

    options = DemoOptions(
        forking=args.forking,
        port=args.port,
        seconds=None if args.serve else args.seconds,
        clients=args.clients,
        ansi=sys.stdout.isatty(),
    )
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
