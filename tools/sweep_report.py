#!/usr/bin/env python3
"""Turns the batching sweep's `troupe load --json` results into a markdown table (stdout) and a
self-contained SVG line chart of goodput vs offered load, one line per configuration."""
import argparse
import json
import math
from xml.sax.saxutils import escape

COLORS = ["#c0392b", "#2a7ab0", "#2a9d3a", "#8e44ad", "#d68910"]


def load_levels(path):
    """The sweep's load levels (phases named like '40%') in order, as (percent, phase)."""
    run = json.load(open(path))
    return [(float(p["name"][:-1]), p) for p in run["phases"] if p["name"].endswith("%")]


def nice_ceiling(v):
    if v <= 0:
        return 1
    p = 10 ** math.floor(math.log10(v))
    return next(m * p for m in (1, 2, 2.5, 5, 10) if m * p >= v)


def table(configs, capacity):
    names = [c["name"] for c in configs]
    head = ["offered load", "offered req/s"]
    for n in names:
        head += [f"{n}: goodput req/s (% of sent)", f"{n}: p99 ms", f"{n}: errors"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (pct, _) in enumerate(configs[0]["levels"]):
        cells = [f"{pct:g} %", f"{pct * capacity / 100:.0f}"]
        for c in configs:
            p = c["levels"][i][1]
            share = 100 * p["within_slo"] / max(p["sent"], 1)
            p99 = f"{p['latency_ms']['p99']:.1f}" if p["ok"] else "—"  # no ok reply to time
            cells += [f"{p['goodput']:.0f} ({share:.0f} %)", p99, str(p["error_count"])]
        rows.append("| " + " | ".join(cells) + " |")
    batches = ", ".join(f"{c['name']} {c['avg_batch']}" for c in configs)
    return "\n".join(rows) + f"\n\nAverage rows per executed batch over the whole sweep: {batches}.\n"


def svg_chart(configs, capacity, slo_ms):
    w, h, left, right, top, bottom = 800, 440, 70, 190, 50, 55
    pw, ph = w - left - right, h - top - bottom
    x_max = 130.0
    y_max = nice_ceiling(max([1.2 * capacity] + [p["goodput"] for c in configs
                                                  for _, p in c["levels"]]))
    x = lambda pct: left + pw * pct / x_max
    y = lambda v: top + ph * (1 - v / y_max)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{left}" y="22" font-size="14" font-weight="bold">Goodput within a '
         f'{slo_ms:g} ms SLO vs offered load (seed CNN over HTTP, Poisson)</text>',
         f'<text x="{left}" y="38" fill="#555">100 % = {capacity:.0f} req/s, the closed-loop '
         f'capacity of the shipped config</text>']
    for i in range(6):
        v = y_max * i / 5
        o.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" '
                 f'stroke="#e5e5e5"/>')
        o.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    for pct in range(0, 121, 20):
        o.append(f'<line x1="{x(pct):.1f}" y1="{top + ph}" x2="{x(pct):.1f}" y2="{top + ph + 5}" '
                 f'stroke="#333"/>')
        o.append(f'<text x="{x(pct):.1f}" y="{top + ph + 18}" text-anchor="middle">{pct} %</text>')
    o.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">offered load '
             f'(% of capacity)</text>')
    o.append(f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" '
             f'text-anchor="middle">goodput (req/s within the SLO)</text>')
    # Ideal: every offered request answered within the SLO.
    o.append(f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(120):.1f}" '
             f'y2="{y(1.2 * capacity):.1f}" stroke="#999" stroke-dasharray="5 4"/>')
    legend = [("offered (ideal)", "#999", True)]
    for k, c in enumerate(configs):
        color = COLORS[k % len(COLORS)]
        pts = " ".join(f"{x(pct):.1f},{y(p['goodput']):.1f}" for pct, p in c["levels"])
        o.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for pct, p in c["levels"]:
            o.append(f'<circle cx="{x(pct):.1f}" cy="{y(p["goodput"]):.1f}" r="3" fill="{color}"/>')
        legend.append((f"{c['name']} ({c['label']})", color, False))
    for k, (text, color, dashed) in enumerate(legend):
        ly = top + 12 + 18 * k
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        o.append(f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 30}" y2="{ly}" '
                 f'stroke="{color}" stroke-width="2"{dash}/>')
        o.append(f'<text x="{left + pw + 35}" y="{ly + 4}">{escape(text)}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--capacity", type=float, required=True, help="req/s that 100 %% stands for")
    ap.add_argument("--svg", required=True, help="where to write the chart")
    ap.add_argument("results", nargs="+", help="NAME=RESULT.json=AVG_BATCH per configuration")
    args = ap.parse_args()
    labels = {"none": "batch 1", "small": "max 8, 200 µs", "large": "max 64, 2 ms"}
    configs = []
    for item in args.results:
        name, path, avg = item.split("=")
        configs.append({"name": name, "label": labels.get(name, name), "avg_batch": avg,
                        "levels": load_levels(path)})
    slo_ms = configs[0]["levels"][0][1]["slo_ms"]
    with open(args.svg, "w") as f:
        f.write(svg_chart(configs, args.capacity, slo_ms))
    print(table(configs, args.capacity))


if __name__ == "__main__":
    main()
