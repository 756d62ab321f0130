"""ClientTCP connects + one round trip per second, before and after, against asyncio.

Run: ``.venv/bin/python bench/client_ab.py BASE_TREE [--rounds 5] [--seconds 2]``

The ``client`` part of ``bench/servers_tcp.py`` (issue 16's target: >= 1x
asyncio ``open_connection``, one at a time and 8 at once) as an A/B: one
asyncio echo server, and per round, at each concurrency, five client
processes one after the other -- asyncio, then a new ClientTCP per
connection and one ClientTCP reconnecting from its ``Disconnected`` (POE's
idiom), each from BASE_TREE (e.g. a worktree of main) and from this tree --,
the order reversed every other round so the machine's drift hits all alike.
Each client is that tree's own ``bench/servers_tcp.py --client KIND`` with
``PYTHONPATH`` set to the tree.  Printed: per kind the median of the rounds
with its range and its ratio to asyncio's median, and the median of the
ratios paired within a round (the figure the load of a shared machine moves
least).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable


def rate(tree: Path, kind: str, port: int, concurrency: int, seconds: float) -> float:
    """One client process's connections per second."""
    out = subprocess.run(
        [PY, str(tree / "bench" / "servers_tcp.py"), "--client", kind, "--port", str(port),
         "--concurrency", str(concurrency), "--seconds", str(seconds)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)},
        timeout=seconds + 60, check=True,
    )  # fmt: skip
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the other checkout (e.g. a worktree of main)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per client process")
    parser.add_argument("--concurrency", type=int, action="append", help="default: 1 and 8")
    opts = parser.parse_args()
    kinds = [
        ("asyncio open_connection", ROOT, "asyncio"),
        ("new ClientTCP per conn., base", opts.base.resolve(), "kernelish-new"),
        ("new ClientTCP per conn., this", ROOT, "kernelish-new"),
        ("ClientTCP reconnecting, base", opts.base.resolve(), "kernelish"),
        ("ClientTCP reconnecting, this", ROOT, "kernelish"),
    ]
    concurrencies = opts.concurrency or [1, 8]
    server = subprocess.Popen(
        [PY, str(HERE / "servers_tcp.py"), "--serve", "asyncio"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert server.stdout is not None
    got: dict[tuple[int, str], list[float]] = {(c, k[0]): [] for c in concurrencies for k in kinds}
    try:
        port = int(server.stdout.readline().split()[1])
        for n in range(opts.rounds):
            for concurrency in concurrencies:
                for label, tree, kind in kinds if n % 2 == 0 else kinds[::-1]:
                    got[concurrency, label].append(
                        rate(tree, kind, port, concurrency, opts.seconds)
                    )
    finally:
        server.terminate()
        server.wait(5)
        server.stdout.close()
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for concurrency in concurrencies:
        base = got[concurrency, kinds[0][0]]
        print(f"\n{concurrency} at a time, {opts.rounds} rounds of {opts.seconds:g} s (conn/s)")
        for label, _, _ in kinds:
            rates = got[concurrency, label]
            median = statistics.median(rates)
            paired = statistics.median(r / b for r, b in zip(rates, base, strict=True))
            print(
                f"  {label:<30} {median:>7,.0f}  ({min(rates):,.0f}-{max(rates):,.0f})"
                f"  / asyncio {median / statistics.median(base):.3f}, paired {paired:.3f}"
            )


if __name__ == "__main__":
    main()
