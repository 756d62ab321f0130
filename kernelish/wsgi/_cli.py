"""``kernelish serve MODULE:APP [options]``: gunicorn's command line, on :func:`serve`.

The options both have are spelled as gunicorn spells them (``-b/--bind``,
``-w/--workers``, ``--max-requests``, ``-u/--user``, ``-p/--pid``, ...);
the few of kernelish's own say so in their help.  A refused option is one
line on stderr naming it, and exit status 2 (argparse's).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["COMMAND", "add_subcommand", "run"]

#: The subcommand this module adds.
COMMAND = "serve"

#: ServeConfig's field -> the option that sets it (for the error messages).
FLAGS = {
    "app": "APP",
    "bind": "--bind",
    "workers": "--workers",
    "worker_connections": "--worker-connections",
    "max_requests": "--max-requests",
    "max_requests_jitter": "--max-requests-jitter",
    "preload": "--preload",
    "timeout": "--timeout",
    "graceful_timeout": "--graceful-timeout",
    "keep_alive": "--keep-alive",
    "header_timeout": "--header-timeout",
    "limit_request_line": "--limit-request-line",
    "limit_request_fields": "--limit-request-fields",
    "limit_request_field_size": "--limit-request-field_size",
    "limit_request_body": "--limit-request-body",
    "user": "--user",
    "group": "--group",
    "pidfile": "--pid",
    "daemon": "--daemon",
    "chdir": "--chdir",
    "access_logfile": "--access-logfile",
    "error_logfile": "--error-logfile",
    "log_level": "--log-level",
    "raw_env": "--env",
    "status": "--status",
    "metrics": "--metrics",
}


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        COMMAND,
        help="run a WSGI application on the pre-forking Daemon (gunicorn's options)",
        description="Serve MODULE:APP (or MODULE:FACTORY()) with pre-forked sync workers, "
        "as `gunicorn MODULE:APP` does. PORT=N is printed first on stdout.",
    )
    p.add_argument("app", metavar="APP", help="MODULE[:NAME] or MODULE:FACTORY(ARGS)")
    add = p.add_argument
    add("-b", "--bind", default="127.0.0.1:8000", help="HOST:PORT or unix:PATH (127.0.0.1:8000)")
    add("-w", "--workers", type=int, default=1, help="worker processes (1)")
    add(
        "--worker-connections",
        type=int,
        default=1,
        help="connections a worker serves at once (1: gunicorn's sync worker)",
    )
    add(
        "--max-requests",
        type=int,
        default=0,
        help="requests before a worker is replaced (0: no limit)",
    )
    add("--max-requests-jitter", type=int, default=0, help="up to this many more, per worker")
    add("--preload", action="store_true", help="import the application before forking")
    add(
        "-t",
        "--timeout",
        type=float,
        default=30.0,
        help="a worker silent this long is replaced (30; 0: never)",
    )
    add("--graceful-timeout", type=float, default=30.0, help="seconds to finish on TERM (30)")
    add(
        "--keep-alive",
        type=float,
        default=0.0,
        help="seconds a connection may idle between requests "
        "(0: close after each, the sync worker's way)",
    )
    add(
        "--header-timeout",
        type=float,
        default=20.0,
        help="kernelish: seconds a request head may take (20)",
    )
    add("--limit-request-line", type=int, default=4094, help="longest request line (4094; 0: 8190)")
    add("--limit-request-fields", type=int, default=100, help="most header fields (100)")
    add(
        "--limit-request-field_size",
        "--limit-request-field-size",
        dest="limit_request_field_size",
        type=int,
        default=8190,
        help="longest header field (8190)",
    )
    add(
        "--limit-request-body",
        type=int,
        default=10 * 1024 * 1024,
        help="kernelish: largest body, 413 beyond (10 MiB)",
    )
    add("-u", "--user", help="switch worker processes to this user (name or uid)")
    add("-g", "--group", help="... and group")
    add("-p", "--pid", dest="pidfile", help="a pidfile (and `kernelish status|stop PIDFILE`)")
    add("-D", "--daemon", action="store_true", help="detach from the terminal")
    add("--chdir", help="change to this directory before loading the application")
    add("--access-logfile", help="the access log ('-': stdout); none by default")
    add(
        "--error-logfile",
        "--log-file",
        dest="error_logfile",
        help="the error log ('-': stderr, the default)",
    )
    add("--log-level", default="info", help="debug, info, warning, error, critical (info)")
    add(
        "-e",
        "--env",
        dest="raw_env",
        action="append",
        default=[],
        help="KEY=VALUE in the environment",
    )
    add(
        "--status",
        help="kernelish: path of a status page (Apache's mod_status), e.g. /server-status",
    )
    add("--metrics", help="kernelish: path of a Prometheus page, e.g. /metrics")
    parser: argparse.ArgumentParser = p
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    names = [n for n in FLAGS if n != "app"]
    options = {name: getattr(args, name) for name in names}
    for name in ("user", "group"):
        value = options[name]
        if isinstance(value, str) and value.isdigit():
            options[name] = int(value)
    return options


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``serve`` command; the exit status."""
    from ._app import AppImportError
    from ._config import ServeConfigError
    from ._serve import serve

    try:
        return serve(args.app, **_options(args))
    except ServeConfigError as exc:
        text = str(exc)
        for field in exc.fields:
            flag = FLAGS.get(field.split(".")[0])
            if flag is not None:
                text = text.replace(f"{field}:", f"{flag}:", 1)
        sys.stderr.write(f"kernelish {text}\n")
        return 2
    except AppImportError as exc:
        sys.stderr.write(f"kernelish serve: {exc}\n")
        return 3
