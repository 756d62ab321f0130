"""A fixed number of ClientTCP connections, for instruction counts (callgrind).

Run: ``.venv/bin/python bench/client_count.py N [--concurrency 1] [--reconnect]``

Timings on the shared two-core machine move by 5-10% from run to run; the
instructions a client process executes move by about 1%.  This script
starts an asyncio echo server (``bench/servers_tcp.py --serve asyncio``)
and makes N connections + one round trip, each by a new ClientTCP (or, with
``--reconnect``, by ClientTCPs reconnecting from their ``Disconnected``),
as ``bench/servers_tcp.py --client`` does but counted, not timed.  The
instructions per connection are the difference of two runs divided by the
difference of their N, which takes the start-up out::

    for n in 200 1000; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/client_count.py $n 2>&1 | grep Collected
    done   # (second - first) / 800

The server runs outside valgrind (its own process, started before).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(port: int, total: int, concurrency: int, new: bool) -> int:
    """Make ``total`` connections; the number made."""
    from kernelish import HEAP, KERNEL, HandlerArgs, Session, poe_kernel
    from kernelish.components.client_tcp import ClientTCP

    made = [0]
    ended = [0]

    def one() -> None:
        made[0] += 1
        ClientTCP(
            RemoteAddress="127.0.0.1",
            RemotePort=port,
            Connected=lambda _: _[HEAP]["server"].put("ping"),
            ServerInput=lambda _: _[KERNEL].yield_("shutdown"),
            Disconnected=disconnected,
        )

    def disconnected(_: HandlerArgs) -> None:
        ended[0] += 1
        if new:
            if made[0] < total:
                _[KERNEL].post("manager", "next")
            elif ended[0] == total:
                _[KERNEL].post("manager", "done")
        elif ended[0] + concurrency <= total:
            _[KERNEL].yield_("reconnect")

    def start(_: HandlerArgs) -> None:
        _[KERNEL].alias_set("manager")
        for _i in range(min(concurrency, total)):
            one()

    Session.create(
        inline_states={
            "_start": start,
            "next": lambda _: one(),
            "done": lambda _: _[KERNEL].alias_remove("manager"),
        }
    )
    poe_kernel.run()
    return ended[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("total", type=int)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--reconnect", action="store_true")
    opts = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "servers_tcp.py"), "--serve", "asyncio"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    assert server.stdout is not None
    try:
        port = int(server.stdout.readline().split()[1])
        done = run(port, opts.total, opts.concurrency, not opts.reconnect)
    finally:
        server.terminate()
        server.wait(5)
        server.stdout.close()
    print(f"{done} connections")


if __name__ == "__main__":
    main()
