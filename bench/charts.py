#!/usr/bin/env python3
"""Draws the benchmark tables that run.py, udp_run.py, tls_run.py and
http_run.py wrote with --json: one PNG chart per table.

Usage: /usr/bin/python3 bench/charts.py --out DIR RESULTS.json ...

Each chart shows the server's CPU time per request (the number these noisy
machines measure best: a ratio within one run) as one bar per server, the
servers grouped (C servers, then the Python servers by mode or framework)
and coloured by what runs them: the bare floor, tapio, libuv, uvloop or
stock asyncio (hatched: on io_uring or poll rather than epoll). Each bar is labelled with its value and its ratio to the row
the table compares it with (the floor for C rows, uvloop for Python rows).
A chart is named after its JSON file and its table's title:
echo.json's "1 KiB messages, 10 connections" becomes
echo-1-kib-messages-10-connections.png.

Needs matplotlib (Debian's python3-matplotlib, so Debian's /usr/bin/python3).
"""
import argparse
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

COLOURS = {  # what runs the server -> bar colour
    "floor": "#8c8c8c",
    "tapio": "#1f77b4",
    "libuv": "#9467bd",
    "uvloop": "#ff7f0e",
    "asyncio": "#2ca02c",
}
PY_LOOPS = ("tapio", "uvloop", "asyncio")
# The name part of a row on a backend other than epoll: its bar's hatching
# and the legend's name for it.
BACKENDS = {"uring": ("///", "io_uring backend"), "poll": ("...", "poll backend")}


def classify(name):
    """(group, implementation) of a row name: py-LOOP[-MODE] rows are Python
    ones grouped by mode, FRAMEWORK-SIZE-LOOP rows (http_run.py) grouped by
    framework, the others C servers. A "uring" or "poll" part (a row on
    another of libtapio's backends) changes neither: it sits beside its
    epoll twin."""
    parts = [part for part in name.split("-") if part not in BACKENDS]
    if parts[0] == "py" and len(parts) >= 2:
        mode = "-".join(parts[2:])
        return ("Python " + mode if mode else "Python"), parts[1]
    if len(parts) == 3 and parts[2] in PY_LOOPS and parts[1].isdigit():
        return parts[0], parts[2]
    if "floor" in parts:
        return "C", "floor"
    if parts[0] == "libuv":
        return "C", "libuv"
    return "C", "tapio"


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def measured_rows(table):
    """The rows with numbers, in groups of first appearance (C first)."""
    rows = [row for row in table["rows"] if "cpu_us" in row]
    groups = []
    for row in rows:
        group = classify(row["name"])[0]
        if group not in groups:
            groups.append(group)
    groups.sort(key=lambda g: g != "C")  # stable: C, then the order seen
    return [row for g in groups for row in rows if classify(row["name"])[0] == g]


def bar_label(row, by_name):
    ref = by_name.get(row["reference"])
    label = f"{row['cpu_us']:.1f}"
    if ref and row["reference"] != row["name"] and ref["cpu_us"]:
        label += f"  ({row['cpu_us'] / ref['cpu_us']:.2f}x {row['reference']})"
    return label


def backend(name):
    """The BACKENDS key of a row's name, or None on epoll."""
    return next((part for part in name.split("-") if part in BACKENDS), None)


def draw(table, suite, heading, path):
    """One horizontal bar chart of CPU µs per request, written to path."""
    rows = measured_rows(table)
    by_name = {row["name"]: row for row in rows}
    positions, previous_group, y = [], None, 0.0
    for row in rows:
        group = classify(row["name"])[0]
        if previous_group is not None and group != previous_group:
            y += 0.6  # a gap between groups
        positions.append(y)
        previous_group = group
        y += 1.0
    height = 0.42 * y + 1.7  # inches: the bars, plus the title and footer
    fig, ax = plt.subplots(figsize=(8.5, height))
    colours = [COLOURS[classify(row["name"])[1]] for row in rows]
    values = [row["cpu_us"] for row in rows]
    bars = ax.barh(positions, values, color=colours, height=0.8)
    for bar, row in zip(bars, rows):
        if backend(row["name"]):
            bar.set_hatch(BACKENDS[backend(row["name"])][0])
    ax.set_yticks(positions, [row["name"] for row in rows])
    ax.invert_yaxis()
    top = max(values) if values else 1.0
    for pos, row in zip(positions, rows):
        ax.text(row["cpu_us"] + top * 0.01, pos, bar_label(row, by_name),
                va="center", fontsize=8)
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel(f"server CPU µs per {table['unit']} (lower is better)")
    ax.set_title(f"{suite}: {table['title']}", fontsize=11)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[impl]) for impl in COLOURS
               if any(classify(row["name"])[1] == impl for row in rows)]
    names = [impl for impl in COLOURS
             if any(classify(row["name"])[1] == impl for row in rows)]
    for key, (hatch, label) in BACKENDS.items():
        if any(backend(row["name"]) == key for row in rows):
            handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white",
                                         edgecolor="black", hatch=hatch))
            names.append(label)
    # The legend and the run's heading in a footer of fixed height below the
    # axes, so that they never cover a bar, its label or the axis title.
    footer = 0.55 / height
    fig.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 0.2 / height),
               ncol=len(names), fontsize=8, frameon=False)
    fig.text(0.01, 0.05 / height, heading, fontsize=6.5, color="#555555")
    fig.tight_layout(rect=(0, footer, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory for the charts")
    parser.add_argument("results", nargs="+", help="JSON files the bench scripts wrote")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    written = 0
    for path in args.results:
        with open(path) as f:
            results = json.load(f)
        suite = os.path.splitext(os.path.basename(path))[0]
        for table in results["tables"]:
            if not any("cpu_us" in row for row in table["rows"]):
                print(f"charts: {suite}: {table['title']}: no numbers, no chart",
                      file=sys.stderr)
                continue
            title = slug(table["title"])
            if title.startswith(suite + "-"):  # tls.json's "TLS, 1 KiB messages..."
                title = title[len(suite) + 1:]
            name = os.path.join(args.out, f"{suite}-{title}.png")
            draw(table, suite, results["heading"], name)
            print(name)
            written += 1
    if not written:
        print("charts: no table to draw", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
