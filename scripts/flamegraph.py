#!/usr/bin/env python3
"""Renders a speedscope JSON profile (dotnet-trace convert --format Speedscope) as a flame-graph SVG
(drawn as an icicle: callers on top).

All threads are merged into one tree: a frame's width is the time its stacks were sampled on any
thread. Samples of threads not running managed code (dotnet-trace's UNMANAGED_CODE_TIME: parked in a wait,
or in a system call) and stacks whose innermost frames are waits are left out unless --keep-idle is given, so the graph shows where the processors went. Also prints the frames with the
most time at the top of the stack (self time), which is what docs/profiling.md quotes.

usage: scripts/flamegraph.py trace.speedscope.json out.svg [--title TEXT] [--keep-idle] [--top N]
"""
import argparse
import html
import json
import re

IDLE = re.compile(r"LowLevelLifoSemaphore|WaitHandle\.Wait|Monitor\.Wait|Thread\.Sleep|WaitOneNoCheck|SocketAsyncEngine\.EventLoop|"
                  r"ManualResetEventSlim\.Wait|SemaphoreSlim\.Wait|Interop\+Sys\.WaitForSocketEvents|Thread\.Join|PortableThreadPool\+GateThread|"
                  r"WaitSubsystem|BlockingCollection|TimerQueue\.TimerThread|Interop\+Sys\.(Read|Poll)")


def stacks(profile, frames):
    """Yields (stack as a tuple of frame names, milliseconds) from an evented profile."""
    open_stack, last = [], None
    for event in profile["events"]:
        at = event["at"]
        if open_stack and last is not None and at > last:
            yield tuple(open_stack), at - last
        last = at
        name = frames[event["frame"]]["name"]
        if event["type"] == "O":
            open_stack.append(name)
        elif open_stack:
            open_stack.pop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("svg")
    parser.add_argument("--title", default="Transactor CPU flame graph")
    parser.add_argument("--keep-idle", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--max-depth", type=int, default=70, help="rows drawn; deeper frames are cut (async stacks run deep)")
    args = parser.parse_args()

    data = json.load(open(args.profile))
    frames = data["shared"]["frames"]
    root = {"name": "all", "ms": 0.0, "children": {}}
    selfs, idle_ms = {}, 0.0
    for profile in data["profiles"]:
        if profile.get("type") != "evented":
            continue
        for stack, ms in stacks(profile, frames):
            # dotnet-trace ends each sample with a pseudo-frame: CPU_TIME (the thread ran managed
            # code) or UNMANAGED_CODE_TIME (it was in native code: mostly parked in a wait or a syscall).
            working = stack[-1] == "CPU_TIME"
            # Thread names are frames too: leaving them out merges the threads' work.
            stack = tuple(f for f in stack if f not in ("CPU_TIME", "UNMANAGED_CODE_TIME") and not f.startswith("Thread (")) or ("?",)
            if not args.keep_idle and (not working or any(IDLE.search(f) for f in stack[-3:])):
                idle_ms += ms
                continue
            node = root
            node["ms"] += ms
            for name in stack:
                node = node["children"].setdefault(name, {"name": name, "ms": 0.0, "children": {}})
                node["ms"] += ms
            selfs[stack[-1]] = selfs.get(stack[-1], 0.0) + ms

    width, row, min_px = 1600, 16, 0.5
    depth = [0]

    def measure(node, d):
        depth[0] = max(depth[0], d)
        if d >= args.max_depth:
            return
        for child in node["children"].values():
            if child["ms"] / root["ms"] * width >= min_px:
                measure(child, d + 1)

    measure(root, 0)
    height = (depth[0] + 1) * row + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">',
           f'<rect width="100%" height="100%" fill="#fdfdf6"/>',
           f'<text x="8" y="18" font-size="14">{html.escape(args.title)}</text>',
           f'<text x="8" y="36" fill="#555">{root["ms"] / 1000:.1f} s of samples on working threads ({idle_ms / 1000:.1f} s waiting left out); width = share of samples; hover for names</text>']

    def color(name):
        if name.startswith("Transactor"):
            return "#f28e2b"
        if name.startswith("Orleans"):
            return "#4e79a7"
        if name.startswith("Microsoft.AspNetCore") or "Kestrel" in name:
            return "#59a14f"
        if name.startswith("System.Text.Json") or "Serializ" in name:
            return "#b07aa1"
        return "#e15759" if "GC" in name or "Alloc" in name else "#bab0ac"

    def draw(node, x, d):
        w = node["ms"] / root["ms"] * width
        if w < min_px or d > args.max_depth:
            return
        # An icicle: the root on top, callees below, so the broad frames come first.
        y = 48 + d * row
        label = html.escape(node["name"])
        pct = 100 * node["ms"] / root["ms"]
        out.append(f'<g><title>{label} ({pct:.2f} %)</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 1}" fill="{color(node["name"])}" rx="1"/>')
        chars = int(w / 6.6)
        if chars >= 4:
            text = node["name"] if len(node["name"]) <= chars else node["name"][: chars - 2] + ".."
            out.append(f'<text x="{x + 2:.2f}" y="{y + row - 5}">{html.escape(text)}</text>')
        out.append("</g>")
        cx = x
        for child in sorted(node["children"].values(), key=lambda c: c["name"]):
            draw(child, cx, d + 1)
            cx += child["ms"] / root["ms"] * width

    draw(root, 0, 0)
    out.append("</svg>")
    open(args.svg, "w").write("\n".join(out))
    print(f"{root['ms'] / 1000:.1f} s working, {idle_ms / 1000:.1f} s waiting left out; top frames by self time:")
    for name, ms in sorted(selfs.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {100 * ms / root['ms']:5.1f} %  {name}")


if __name__ == "__main__":
    main()
