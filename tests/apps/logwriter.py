#!/usr/bin/env python3
"""A log writer for the FollowTail tests and benchmark: appends numbered
lines, one write(2) each (as a logging handler does), and reopens its log
on SIGHUP (as daemons do for logrotate's ``create``).

    python tests/apps/logwriter.py LOGFILE COUNT [--pause SECONDS]

Line N reads ``seq=N level=LEVEL ...``: LEVEL is ERROR when N % 10 == 0,
else WARN when N % 3 == 0, else INFO.  Prints ``wrote COUNT`` at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any


def level(n: int) -> str:
    """The level of line ``n``."""
    if n % 10 == 0:
        return "ERROR"
    if n % 3 == 0:
        return "WARN"
    return "INFO"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logfile")
    parser.add_argument("count", type=int)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between lines")
    args = parser.parse_args()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    reopen = [False]

    def on_hup(signum: int, frame: Any) -> None:
        reopen[0] = True

    signal.signal(signal.SIGHUP, on_hup)
    fd = os.open(args.logfile, flags, 0o644)
    for n in range(1, args.count + 1):
        if reopen[0]:
            reopen[0] = False
            os.close(fd)
            fd = os.open(args.logfile, flags, 0o644)
        os.write(fd, f"seq={n} level={level(n)} some message text\n".encode())
        if args.pause:
            time.sleep(args.pause)
    os.close(fd)
    print(f"wrote {args.count}", flush=True)


if __name__ == "__main__":
    main()
