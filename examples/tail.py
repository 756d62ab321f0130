"""Follow a log file through rotation, counting its lines per pattern
(POE::Wheel::FollowTail).

    python examples/tail.py LOGFILE [PATTERN ...] [--poll SECONDS]
        [--every SECONDS] [--from-start]

Each PATTERN is a Python regular expression; a line counts once for each
pattern it contains (``re.search``).  The counts are printed as one JSON
line on SIGUSR1, every ``--every`` seconds if given, and on SIGTERM or
SIGINT, which end the program::

    $ python examples/tail.py /var/log/app.log ERROR 'WARN(ING)?' --every 60 &
    {"following": "/var/log/app.log", "pid": 4242}
    $ kill -USR1 %1
    {"lines": 1042, "resets": 1, "counts": {"ERROR": 3, "WARN(ING)?": 17}}

Only what is appended after the start counts (POE's start: the lines
already there are skipped), unless ``--from-start``.  Rotation is followed
both ways logrotate rotates:

* ``create`` (rename the log, create a new one, HUP the writer): the old
  file is read to its end, and as long as the writer still appends to it,
  before the new one -- nothing is lost, however late the writer reopens.
* ``copytruncate`` (copy the log, truncate it in place): seen as a reset,
  the new content is read from its start.  What the writer appends between
  logrotate's copy and its truncate is in neither file (logrotate's own
  caveat), and so is what it appended since this program's last poll:
  prefer ``create`` where the writer can reopen its log.

``resets`` counts rotations and truncations (FollowTail's ResetEvent).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from kernelish import ARG0, ARG1, ARG2, HEAP, KERNEL, HandlerArgs, Session, poe_kernel
from kernelish.wheels import FollowTail


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logfile", help="the log file to follow")
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help="regular expressions")
    parser.add_argument("--poll", type=float, default=1.0, help="PollInterval (s, default 1)")
    parser.add_argument("--every", type=float, help="print the counts every SECONDS")
    parser.add_argument("--from-start", action="store_true", help="count the lines there too")
    return parser.parse_args(argv)


def _start(_: HandlerArgs) -> None:
    kernel, heap = _[KERNEL, HEAP]
    opts = heap["opts"]
    heap["lines"] = heap["resets"] = 0
    heap["counts"] = dict.fromkeys(opts.patterns, 0)
    heap["regexes"] = [(p, re.compile(p)) for p in opts.patterns]
    heap["tailor"] = FollowTail(
        Filename=opts.logfile,
        InputEvent="got_line",
        ResetEvent="got_reset",
        ErrorEvent="got_error",
        PollInterval=opts.poll,
        **({"Seek": 0} if opts.from_start else {}),
    )
    kernel.sig("USR1", "report")
    kernel.sig("TERM", "shutdown")
    kernel.sig("INT", "shutdown")
    if opts.every:
        kernel.delay("tick", opts.every)
    _print({"following": opts.logfile, "pid": os.getpid()})


def got_line(_: HandlerArgs) -> None:
    heap, line = _[HEAP], _[ARG0]
    heap["lines"] += 1
    counts = heap["counts"]
    for pattern, regex in heap["regexes"]:
        if regex.search(line):
            counts[pattern] += 1


def got_reset(_: HandlerArgs) -> None:
    _[HEAP]["resets"] += 1


def got_error(_: HandlerArgs) -> None:
    operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
    print(f"tail.py: {operation} error {errnum}: {errstr}", file=sys.stderr, flush=True)


def report(_: HandlerArgs) -> None:
    heap = _[HEAP]
    _print({"lines": heap["lines"], "resets": heap["resets"], "counts": heap["counts"]})


def tick(_: HandlerArgs) -> None:
    report(_)
    _[KERNEL].delay("tick", _[HEAP]["opts"].every)


def shutdown(_: HandlerArgs) -> None:
    kernel, heap = _[KERNEL, HEAP]
    kernel.sig_handled()
    report(_)
    del heap["tailor"]  # its poll timer goes with it
    kernel.delay("tick")
    for name in ("USR1", "TERM", "INT"):
        kernel.sig(name)


def _print(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    Session.create(
        inline_states={
            "_start": _start,
            "got_line": got_line,
            "got_reset": got_reset,
            "got_error": got_error,
            "report": report,
            "tick": tick,
            "shutdown": shutdown,
        },
        heap={"opts": opts},
    )
    poe_kernel.run()


if __name__ == "__main__":
    main()
