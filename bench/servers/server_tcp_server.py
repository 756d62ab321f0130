"""``examples/server_tcp_preforking.py`` / ``server_tcp_forking.py`` in the
foreground and parameterised, for the benchmarks: a ServerTCP(Daemon=True)
line server (``PING`` -> ``PONG``, ``PID``, ``DONE`` -> ``OK`` then close)
under the Daemon component, as ``bench/servers/kernelish_server.py`` is
for the SocketFactory examples.

    python bench/servers/server_tcp_server.py prefork [--requests 1000] [--start-children 8] ...
    python bench/servers/server_tcp_server.py fork [--max-children 8]

Prints ``PORT=N`` once listening.  SIGTERM shuts the Daemon down.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from kernelish import ARG0, HEAP, KERNEL, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.components.server_tcp import ServerTCP


def client_input(_: Any) -> None:
    """One line in, one line out (the protocol of ``examples/_lineserver.py``)."""
    client = _[HEAP]["client"]
    command = _[ARG0].strip().upper()
    if command == "PING":
        client.put("PONG")
    elif command == "DONE":
        client.put("OK")
        _[KERNEL].yield_("shutdown")
    elif command == "PID":
        client.put(str(os.getpid()))
    else:
        client.put("???")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("prefork", "fork"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--start-children", type=int, default=8)
    parser.add_argument("--min-spare", type=int, default=2)
    parser.add_argument("--max-spare", type=int, default=None)
    parser.add_argument("--max-children", type=int, default=None)
    opts = parser.parse_args()
    server = ServerTCP(Address="127.0.0.1", Daemon=True, ClientInput=client_input)
    print(f"PORT={server.port}", flush=True)
    if opts.mode == "prefork":
        params: dict[str, Any] = {
            "start_children": opts.start_children,
            "requests": opts.requests,
            "min_spare": opts.min_spare,
        }
        if opts.max_spare is not None:
            params["max_spare"] = opts.max_spare
        if opts.max_children is not None:
            params["max_children"] = opts.max_children
    else:
        params = {"max_children": opts.max_children or 8}
    DaemonComponent.spawn(alias="Daemon", detach=False, **params)
    poe_kernel.run()
    if Daemon.is_child():
        os._exit(0)  # a child leaves at once, as the examples' children do


if __name__ == "__main__":
    main()
