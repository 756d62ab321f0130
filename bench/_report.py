"""The report of ``make bench``: ``docs/performance.md`` and its charts.

``bench/run_all.py`` collects the JSON lines of every benchmark script and
hands them here: the targets with PASS / FALL SHORT, the side-by-side table
of the Perl original, kernelish and the bare servers, one section per
benchmark with its figures, and for each missed target what bounds it (the
``bounds`` texts of ``run_all.py``, with the profile run for it).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def charts(records: list[dict[str, Any]]) -> list[str]:
    """Write the PNG charts; returns their paths relative to docs/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    figures = {r["bench"]: r for r in records if "bench" in r}
    written = []

    names = ["post ping-pong", "yield_ to self", "call"]
    if all(n in figures for n in names) and "asyncio call_soon ping-pong" in figures:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        labels = ["asyncio call_soon", *names]
        ours = [figures["asyncio call_soon ping-pong"]["value"]] + [
            figures[n]["value"] for n in names
        ]
        perl = [0.0] + [figures[n].get("perl") or 0.0 for n in names]
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], [v / 1000 for v in ours], 0.4, label="Python (this run)")
        ax.bar([x + 0.2 for x in xs], [v / 1000 for v in perl], 0.4, label="Perl POE 1.370")
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("thousand events/s")
        ax.set_title("Dispatch")
        ax.legend()
        fig.tight_layout()
        fig.savefig(IMG / "bench-dispatch.png", dpi=100)
        plt.close(fig)
        written.append("img/bench-dispatch.png")

    panels = [
        ("prefork_r1000", "bare_prefork", "Pre-forking, requests=1000"),
        ("prefork_r1", "bare_fork", "Pre-forking, requests=1"),
        ("postfork", "bare_fork", "Post-forking, max_children=3"),
    ]
    present = [p for p in panels if any(r.get("group") == p[0] for r in records)]
    if present:
        fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6))
        if len(present) == 1:
            axes = [axes]
        for ax, (group, base, title) in zip(axes, present, strict=True):
            rows = [r for r in records if r.get("group") == group and "role" in r]
            by_role = {(r["role"], r["clients"]): r["value"] for r in rows}
            clients = sorted({r["clients"] for r in rows})
            ours = [by_role.get(("kernelish", c), 0.0) for c in clients]
            perl = [by_role.get(("perl", c), 0.0) for c in clients]
            bare = [by_role.get(("bare", c), 0.0) for c in clients]
            xs = range(len(clients))
            ax.bar([x - 0.27 for x in xs], ours, 0.27, label="kernelish")
            ax.bar(list(xs), bare, 0.27, label=f"bare ({base.replace('bare_', '')})")
            ax.bar([x + 0.27 for x in xs], perl, 0.27, label="Perl original (this run)")
            ax.set_xticks(list(xs), [f"{c} clients" for c in clients])
            ax.set_ylabel("connections/s")
            ax.set_title(title)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(IMG / "bench-pools.png", dpi=100)
        plt.close(fig)
        written.append("img/bench-pools.png")
    return written


SECTIONS = [
    ("dispatch", "Dispatch", "dispatch"),
    ("timers", "Timers", "timers"),
    ("echo", "Line echo", "echo"),
    ("prefork_r1000", "Pre-forking, requests=1000", "pools"),
    ("prefork_r1", "Pre-forking, requests=1", "pools"),
    ("postfork", "Post-forking, max_children=3", "pools"),
    ("latency", "Fork latency", "pools"),
    ("memory", "Idle pre-forked child", "pools"),
    ("imports", "Imports: time, the master's memory and mappings", "imports"),
    ("filters", "Reference filter", "filters"),
    ("tail", "FollowTail", "tail"),
    ("run_start", "Run: start to CloseEvent", "run"),
    ("run_lines", "Run: lines from a worker", "run"),
    ("run_ref", "Run: Reference round trips", "run"),
    ("tcp_echo", "ServerTCP: line echo", "servers_tcp"),
    ("tcp_daemon", "ServerTCP under the pre-forking Daemon", "servers_tcp"),
    ("tcp_tls", "ServerTCP: TLS handshakes", "servers_tcp"),
    ("tcp_client", "ClientTCP: connect and one round trip", "servers_tcp"),
    ("http_parse", "HTTP parsing: httptools, h11 and the HTTPD filter", "http_parse"),
    ("http_server", "ServerHTTP under the pre-forking Daemon (wrk)", "http_server"),
    ("http_client", "ClientHTTP: requests per second", "http_client"),
    ("wsgi", "WSGI: kernelish serve against gunicorn sync (wrk)", "wsgi"),
]


def section_records(key: str, script: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("script") == script]
    if script in ("pools", "run", "servers_tcp", "http_server", "wsgi"):
        return [r for r in mine if r.get("group") == key]
    return mine


def side_by_side(records: list[dict[str, Any]]) -> list[str]:
    """The issue's table from this run: each figure for the Perl original,
    kernelish and the bare server, with the ratios."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        if "role" in r and "bench" in r:
            rows.setdefault(r["row"], {})[r["role"]] = r
    if not rows:
        return []
    out = [
        "",
        "## Side by side with the Perl original",
        "",
        "| figure | Perl original | kernelish | bare Python | kernelish / Perl "
        "| kernelish / bare | noise (spread of kernelish's rounds) |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = [r["note"] for r in records if r.get("group") == "note"]

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "skipped" if notes else ""
        text = fmt(r["value"], r["unit"])
        if r.get("group") == "postfork" and r.get("clients", 1) > 1:
            text += f", {r['errors']} errors"
        return text

    def over(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
        if a is None or b is None or not b["value"]:
            return ""
        return f"{a['value'] / b['value']:.2f}x"

    for row, by_role in rows.items():
        ours = by_role.get("kernelish")
        noise = ""
        if ours is not None:
            for field in ("spread", "range_mb", "iqr_ms"):
                if ours.get(field) is not None:
                    noise = f"{field} {ours[field]}"
        out.append(
            f"| {row} | {cell(by_role.get('perl'))} | {cell(ours)} | "
            f"{cell(by_role.get('bare'))} | {over(ours, by_role.get('perl'))} | "
            f"{over(ours, by_role.get('bare'))} | {noise} |"
        )
    for note in notes:
        out += ["", f"Perl rows skipped: {note}."]
    return out


def write_doc(
    records: list[dict[str, Any]],
    bounds: dict[str, str],
    images: list[str],
    profiles: dict[str, str],
    command: str,
    started: str,
    load: str,
) -> None:
    checks = [r for r in records if "check" in r]
    out = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run_all.py`); do not edit by hand.",
        "",
        f"Run: `{command}`, {started}, on {platform.node()} "
        f"({platform.system()} {platform.release()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}); load average at the start: {load}.",
        "",
        "Every ratio compares figures measured in the same run (kernelish against a "
        "baseline: asyncio, or a bare server with no kernel); every figure is the best "
        "of several runs. The pools' Perl figures are measured in this run: "
        "POE::Component::Daemon's own `eg/` programs on Debian's POE 1.370 "
        "(`bench/_servers.py`), interleaved round by round with the bare and "
        "kernelish servers; `spread` is (best - worst) / best over the rounds, "
        "`ratio_range` the range of the per-round ratios. The dispatch and timer "
        "Perl figures are from the issues that set those targets. The load "
        "generator (`bench/loadgen.py`, one client process per concurrent client, "
        "connect, PING, PONG, DONE, OK, close) shares the 2 cores with the servers.",
        "",
        "## Targets",
        "",
        "| Target | Measured | Wanted | |",
        "|---|---|---|---|",
    ]
    for c in checks:
        verdict = "PASS" if c["pass"] else "**FALL SHORT**"
        out.append(
            f"| {c['check']} | {fmt(c['value'], c['unit'])} | {c['op']} "
            f"{fmt(c['target'], c['unit'])} | {verdict} |"
        )
    out += side_by_side(records)
    for img in images:
        out += ["", f"![{img}]({img})"]
    for key, title, script in SECTIONS:
        rows = section_records(key, script, records)
        if not rows:
            continue
        out += ["", f"## {title}", "", "| Figure | kernelish / baseline | Perl | Notes |"]
        out.append("|---|---|---|---|")
        for r in rows:
            if "bad_input" in r:
                continue  # their own table, below
            if "bench" in r:
                notes = []
                if r.get("baseline"):
                    notes.append("baseline")
                for field in ("p50_ms", "p99_ms"):
                    if field in r:
                        notes.append(f"{field[:-3]} {r[field]} ms")
                if "errors" in r:
                    notes.append(f"errors {r['errors']} (resets {r['resets']})")
                if r.get("perl_row"):
                    notes.append("Perl original")
                for field in ("spread", "ratio_range", "range_mb", "iqr_ms", "note"):
                    if r.get(field) not in (None, []):
                        notes.append(f"{field} {r[field]}")
                if "max_children_seen" in r and r.get("group") == "postfork":
                    notes.append(f"most children seen {r['max_children_seen']}")
                out.append(
                    f"| {r['bench']} | {fmt(r['value'], r['unit'])} | "
                    f"{fmt(r.get('perl'), r['unit'])} | {', '.join(notes)} |"
                )
            else:
                verdict = "PASS" if r["pass"] else "**FALL SHORT**"
                out.append(
                    f"| {r['check']} | {fmt(r['value'], r['unit'])} | | "
                    f"target {r['op']} {fmt(r['target'], r['unit'])}: {verdict} |"
                )
        bad = [r for r in rows if "bad_input" in r]
        if bad:
            out += ["", "| Bad input | httptools | h11 | HTTPD answers |", "|---|---|---|---|"]
            out += [
                f"| {r['bad_input']} | {r['httptools']} | {r['h11']} | {r['httpd']} |" for r in bad
            ]
        missed = [r for r in rows if "check" in r and not r["pass"]]
        if missed:
            out += ["", f"**What bounds it.** {bounds.get(key, '')}"]
            if key in profiles:
                out += ["", "```text", profiles[key], "```"]
    out += [
        "",
        "## Running it",
        "",
        "```sh",
        "make bench                              # the whole suite, writes this page",
        ".venv/bin/python bench/run_all.py --quick   # shorter runs, to try it out",
        ".venv/bin/python bench/pools.py --only postfork  # one benchmark",
        ".venv/bin/python bench/pools.py --no-perl        # without the Perl original",
        "KERNELISH_ROOT=../other-checkout .venv/bin/python bench/imports.py  # another tree",
        ".venv/bin/python bench/loadgen.py PORT --mode conn --concurrency 8 --seconds 3",
        "```",
        "",
        "The Perl original runs when `perl -MPOE` works (Debian's POE 1.370: "
        "`../shared/perl-original/setup.sh`); its rows are skipped with a note "
        "otherwise. Its daemons detach; `bench/_servers.py` adopts them as a child "
        "subreaper, stops them by pid and session and removes their SysV segments.",
        "",
        "The machine is shared and noisy: compare ratios, not absolute figures.",
        "",
    ]
    DOC.write_text("\n".join(out))
