"""The status page and the metrics (Apache's ``mod_status``, Prometheus).

``ServerHTTP(Status='/server-status', Metrics='/metrics')`` adds two
routes, before every other:

* the status page: an HTML page that reloads itself every
  ``StatusRefresh`` seconds (``?refresh=N`` for another period,
  ``?refresh=0`` for none; ``?auto`` for mod_status's plain ``key: value``
  text).  It shows what ``kernelish status`` shows: the Daemon's mode, its
  parent, the scoreboard, and for the parent and each child its pid, slot,
  state, requests served, CPU seconds and memory (RSS); then this process's
  own HTTP counters.
* the metrics: the same figures in Prometheus's text format (0.0.4),
  written here by hand: a few dozen lines of one simple format, where
  ``prometheus-client`` would be a runtime dependency the Daemon does not
  otherwise need, and whose registry is per process where these figures are
  the scoreboard's, shared by the whole pool.

Everything is read when the page is asked for: the scoreboard (shared
memory: whichever child answers sees every child) and ``/proc`` through
psutil, imported then and not before.  Under a pool the per-child series
are labelled by scoreboard slot, not pid, so that a replaced child
continues its slot's series (a counter reset, which Prometheus handles).
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable
from typing import Any

from kernelish import ARG0, ARG1, HandlerArgs
from kernelish.components.daemon import Daemon, SlotState, pool_mode

from ._server import HTTPServer

__all__ = ["daemon_figures", "metrics_handler", "prometheus_text", "status_handler"]

_MODES = {"prefork": "pre-forking", "fork": "forking", "none": "daemon", None: "single process"}
_LIVE = frozenset(s.value for s in SlotState) - {" ", "."}


def _usage(pid: int) -> dict[str, Any]:
    """CPU seconds, RSS and start time of ``pid`` (None where unreadable)."""
    import psutil  # lazily: a server without a status page never loads it

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            cpu = proc.cpu_times()
            return {
                "cpu": cpu.user + cpu.system,
                "rss": proc.memory_info().rss,
                "started": proc.create_time(),
            }
    except psutil.Error:
        return {"cpu": None, "rss": None, "started": None}


def daemon_figures() -> dict[str, Any]:
    """The pool as this process sees it: mode, parent, every live slot of
    the scoreboard with its child's usage."""
    mode = pool_mode()
    me = os.getpid()
    parent = os.getppid() if Daemon.is_child() else me
    board = Daemon.scoreboard()
    slots: list[dict[str, Any]] = []
    chars = ""
    if board is not None:
        infos = board.slots()
        chars = "".join(info.status for info in infos)
        for info in infos:
            if info.status in _LIVE and info.pid:
                slots.append(
                    {
                        "slot": info.index,
                        "pid": info.pid,
                        "state": info.status,
                        "label": SlotState(info.status).label,
                        "requests": info.requests,
                        "changed": info.changed,
                        **_usage(info.pid),
                    }
                )
    counts = {state.label: 0 for state in SlotState if state.value in _LIVE}
    for slot in slots:
        counts[slot["label"]] += 1
    return {
        "mode": _MODES.get(mode, str(mode)),
        "pid": me,
        "parent": {"pid": parent, **_usage(parent)},
        "scoreboard": chars,
        "slots": slots,
        "counts": counts,
        "requests": sum(slot["requests"] for slot in slots),
        "now": time.time(),
    }


def status_handler(server: HTTPServer, refresh: float) -> Callable[[HandlerArgs], None]:
    """The status page's handler."""

    def status_page(_: HandlerArgs) -> None:
        request, response = _[ARG0], _[ARG1]
        figures = daemon_figures()
        mine = server.snapshot()
        if not figures["scoreboard"]:  # no pool: this process is the server
            figures["requests"] = mine["requests"]
        query = request.query
        if query == "auto" or query.startswith("auto&"):
            response.content_type = "text/plain; charset=utf-8"
            response.content = _auto(figures, mine).encode()
        else:
            period = _refresh(query, refresh)
            response.content_type = "text/html; charset=utf-8"
            response.content = _html(figures, mine, period).encode()
        response.headers["Cache-Control"] = "no-store"
        response.respond()

    return status_page


def metrics_handler(server: HTTPServer) -> Callable[[HandlerArgs], None]:
    """The Prometheus page's handler."""

    def metrics_page(_: HandlerArgs) -> None:
        response = _[ARG1]
        response.content_type = "text/plain; version=0.0.4; charset=utf-8"
        response.content = prometheus_text(daemon_figures(), server.snapshot()).encode()
        response.headers["Cache-Control"] = "no-store"
        response.respond()

    return metrics_page


def _refresh(query: str, default: float) -> float:
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "refresh":
            try:
                return min(3600.0, max(0.0, float(value)))
            except ValueError:
                return default
    return default


# -- the formats -------------------------------------------------------------------------------


def _auto(figures: dict[str, Any], mine: dict[str, Any]) -> str:
    counts = figures["counts"]
    lines = [
        f"Mode: {figures['mode']}",
        f"ParentPid: {figures['parent']['pid']}",
        f"Children: {len(figures['slots'])}",
        f"IdleWorkers: {counts['waiting'] + counts['started']}",
        f"BusyWorkers: {counts['request'] + counts['long req']}",
        f"Total Accesses: {figures['requests']}",
        f"Scoreboard: {figures['scoreboard']}",
        f"ProcessRequests: {mine['requests']}",
        f"ProcessConnections: {mine['connections_open']}",
    ]
    return "\n".join(lines) + "\n"


def _metric(out: list[str], name: str, kind: str, doc: str, samples: list[tuple[str, Any]]) -> None:
    out.append(f"# HELP {name} {doc}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        if value is None:
            continue
        out.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")


def prometheus_text(figures: dict[str, Any], mine: dict[str, Any]) -> str:
    """The figures in Prometheus's text exposition format (0.0.4)."""
    out: list[str] = []
    slots, parent = figures["slots"], figures["parent"]
    _metric(out, "kernelish_daemon_info", "gauge", "The pool's mode (1 for the mode in force).",
            [(f'mode="{figures["mode"]}",parent_pid="{parent["pid"]}"', 1)])  # fmt: skip
    _metric(out, "kernelish_daemon_children", "gauge", "Children of the Daemon by state.",
            [(f'state="{label}"', n) for label, n in figures["counts"].items()])  # fmt: skip
    _metric(out, "kernelish_daemon_requests_total", "counter",
            "Requests served by the live children (their scoreboard slots).",
            [("", figures["requests"])])  # fmt: skip
    _metric(out, "kernelish_slot_requests_total", "counter",
            "Requests served by the child in each scoreboard slot since it started.",
            [(f'slot="{s["slot"]}"', s["requests"]) for s in slots])  # fmt: skip
    _metric(out, "kernelish_slot_busy", "gauge",
            "1 while the child in the slot serves a request.",
            [(f'slot="{s["slot"]}"', int(s["state"] in "rl")) for s in slots])  # fmt: skip
    procs = [('role="parent",slot=""', parent)] + [
        (f'role="child",slot="{s["slot"]}"', s) for s in slots
    ]
    _metric(out, "kernelish_process_cpu_seconds_total", "counter",
            "CPU time (user and system) of the daemon's processes.",
            [(labels, _num(p["cpu"])) for labels, p in procs])  # fmt: skip
    _metric(out, "kernelish_process_resident_memory_bytes", "gauge",
            "Resident memory (RSS) of the daemon's processes.",
            [(labels, p["rss"]) for labels, p in procs])  # fmt: skip
    _metric(out, "kernelish_http_requests_total", "counter",
            "Requests read by the process that answered this scrape.",
            [("", mine["requests"])])  # fmt: skip
    _metric(out, "kernelish_http_responses_total", "counter",
            "Responses sent by the process that answered, by status class.",
            [(f'code="{code}"', n) for code, n in sorted(mine["statuses"].items())])  # fmt: skip
    _metric(out, "kernelish_http_response_body_bytes_total", "counter",
            "Body octets sent by the process that answered.", [("", mine["octets"])])  # fmt: skip
    _metric(out, "kernelish_http_connections_open", "gauge",
            "Connections open in the process that answered.",
            [("", mine["connections_open"])])  # fmt: skip
    return "\n".join(out) + "\n"


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.2em 0 .4em}
.meta{color:#555} table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #ccc;padding:.25em .7em;text-align:right}
th{background:#eee} td.l,th.l{text-align:left}
.board{font:16px monospace;letter-spacing:.15em;background:#fff;border:1px solid #ccc;
padding:.3em .6em;display:inline-block}
.legend{color:#555;font-size:.9em} .r{color:#b00;font-weight:bold} .w{color:#070}
"""


def _html(figures: dict[str, Any], mine: dict[str, Any], refresh: float) -> str:
    esc = html.escape
    parent, slots, counts = figures["parent"], figures["slots"], figures["counts"]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(figures["now"]))
    uptime = _duration(figures["now"] - parent["started"]) if parent["started"] else "-"
    head = f'<meta http-equiv="refresh" content="{refresh:g}">' if refresh > 0 else ""
    rows = [_row(str(parent["pid"]), "parent", "-", "-", "-", parent)]
    for s in slots:
        state = f'<span class="{"r" if s["state"] in "rl" else "w"}">{esc(s["label"])}</span>'
        rows.append(_row(str(s["pid"]), "child", str(s["slot"]), state, str(s["requests"]), s))
    status_counts = ", ".join(f"{esc(k)} {v}" for k, v in sorted(mine["statuses"].items()))
    legend = ", ".join(f"<b>{esc(s.value)}</b> {esc(s.label)}" for s in SlotState)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{head}
<title>kernelish server status</title><style>{_CSS}</style></head>
<body>
<h1>kernelish server status</h1>
<p class="meta">{esc(stamp)} &middot; answered by pid <b id="pid">{figures["pid"]}</b>
{f"&middot; refreshes every {refresh:g} s" if refresh > 0 else ""}</p>
<p>Mode: <b id="mode">{esc(figures["mode"])}</b> &middot; parent pid {parent["pid"]}, up {uptime}
&middot; <span id="children">{len(slots)}</span> children:
{", ".join(f"{v} {esc(k)}" for k, v in counts.items() if v) or "none"}
&middot; requests served: <b id="requests">{figures["requests"]}</b></p>
<p><span class="board" id="scoreboard">[{esc(figures["scoreboard"])}]</span></p>
<p class="legend">{legend}; blank: an empty slot</p>
<table id="processes"><tr><th>PID</th><th class="l">Role</th><th>Slot</th><th class="l">State</th>
<th>Requests</th><th>Changed</th><th>CPU (s)</th><th>RSS (MiB)</th></tr>
{"".join(rows)}
</table>
<h2>This process ({mine["pid"]})</h2>
<p>{mine["connections_open"]} connections open, {mine["connections"]} accepted;
{mine["requests"]} requests ({status_counts or "no responses yet"});
{mine["octets"]} body octets sent; {mine["failures"]} handler failures.</p>
</body></html>
"""


def _row(pid: str, role: str, slot: str, state: str, requests: str, usage: dict[str, Any]) -> str:
    changed = usage.get("changed")
    ago = f"{max(0.0, time.time() - changed):.0f} s ago" if changed else "-"
    cpu = f"{usage['cpu']:.2f}" if usage.get("cpu") is not None else "-"
    rss = f"{usage['rss'] / 2**20:.1f}" if usage.get("rss") is not None else "-"
    return (
        f'<tr><td>{pid}</td><td class="l">{role}</td><td>{slot}</td><td class="l">{state}</td>'
        f"<td>{requests}</td><td>{ago}</td><td>{cpu}</td><td>{rss}</td></tr>\n"
    )


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
