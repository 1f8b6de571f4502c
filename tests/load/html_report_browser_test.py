#!/usr/bin/env python3
"""Renders a real `troupe load` HTML report in headless Chromium and checks that every chart
was drawn: a measuring script (appended to a copy of the report; the report itself has no
script) records what the browser laid out and painted, and this test compares it with the
run's JSON. Tampered copies (an empty series, a hidden series, no histogram bars) must fail the
same check, so the check is known to be able to fail.

Usage: html_report_browser_test.py TROUPE MODEL_REPO      exit 0 pass, 1 fail, 77 skip
"""
import html.parser
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77

SCENARIO = """\
name: browser-check
seed: 1
transport: in_process
timeout_ms: 2000
slo_ms: 5
models: [seed_cnn]
payload: {kind: random}
phases:
  - name: constant
    duration_s: 2
    arrival: {process: constant, rate: 100}
  - name: poisson
    duration_s: 1
    arrival: {process: poisson, rate: 200}
  - name: closed
    duration_s: 1
    arrival: {process: closed, concurrency: 2, think_ms: 5}
"""

# Runs in the page after the charts: for each <svg>, what the browser made of it. Hit testing
# (elementsFromPoint) only finds painted geometry, so a hidden or unstroked line is not "drawn".
MEASURE = """
<script>
(() => {
  const hits = (el, points) => points.filter(([x, y]) => {
    const p = new DOMPoint(x, y).matrixTransform(el.getScreenCTM());
    return document.elementsFromPoint(p.x, p.y).includes(el);
  }).length;
  const box = (el) => { const b = el.getBBox(); return [b.x, b.y, b.width, b.height]; };
  let measured = 0;
  for (const svg of document.querySelectorAll('svg')) {
    const r = svg.getBoundingClientRect();
    const grid = [...svg.querySelectorAll('line.grid')].map((l) => {
      const label = l.nextElementSibling;
      return [l.x1.baseVal.value, l.y1.baseVal.value, l.x2.baseVal.value, l.y2.baseVal.value,
              label && label.tagName === 'text' ? label.textContent : ''];
    });
    const series = [...svg.querySelectorAll('polyline.series')].map((el) => {
      const length = el.points.numberOfItems > 1 ? el.getTotalLength() : 0;
      const samples = [];
      for (let i = 0; i <= 20 && length > 0; ++i) {
        const p = el.getPointAtLength(length * i / 20);
        samples.push([p.x, p.y]);
      }
      return {label: el.dataset.series, n: el.points.numberOfItems, length, bbox: box(el),
              hit: samples.length ? hits(el, samples) / samples.length : 0};
    });
    const bars = [...svg.querySelectorAll('rect.bar')].map((el) => {
      const [x, y, w, h] = box(el);
      return {bbox: [x, y, w, h], count: Number(el.textContent),
              hit: hits(el, [[x + w / 2, y + h / 2]])};
    });
    svg.setAttribute('data-drawn', JSON.stringify({width: r.width, height: r.height, grid, series, bars}));
    ++measured;
  }
  document.body.setAttribute('data-measured', measured);
})();
</script>
"""


def find_chromium():
    for name in (os.environ.get("TROUPE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class drawn_parser(html.parser.HTMLParser):
    """Collects each svg's data-drawn measurement (by id) and the body's data-measured."""

    def __init__(self):
        super().__init__()
        self.charts, self.measured = {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "data-drawn" in a:
            self.charts[a.get("id")] = json.loads(a["data-drawn"])
        if tag == "body" and "data-measured" in a:
            self.measured = int(a["data-measured"])


def render(chromium, page, work):
    """The DOM after the measuring script ran, parsed."""
    out = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400",
         "--user-data-dir=" + os.path.join(work, "profile"), "--dump-dom", "file://" + page],
        capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"chromium exited {out.returncode}: {out.stderr[-2000:]}")
    p = drawn_parser()
    p.feed(out.stdout)
    return p


def axis(grid):
    """(left, right, base_y, top_y, top_value) from the horizontal grid lines and their labels."""
    rows = [g for g in grid if abs(g[1] - g[3]) < 1e-6]
    if len(rows) < 2:
        raise ValueError("fewer than two horizontal grid lines")
    base = max(rows, key=lambda g: g[1])
    top = min(rows, key=lambda g: g[1])
    return min(g[0] for g in rows), max(g[2] for g in rows), base[1], top[1], float(top[4])


def check_series(problems, chart_id, drawn, label, seconds, values, x_max):
    """The polyline `label` must be painted, have one point per value, and span the values'
    range on the chart's own axis (within a pixel and 1 % of the axis)."""
    left, right, base, top, top_value = axis(drawn["grid"])
    found = [s for s in drawn["series"] if s["label"] == label]
    where = f"{chart_id}/{label}"
    if len(found) != 1:
        problems.append(f"{where}: {len(found)} polylines")
        return
    s = found[0]
    if s["n"] != len(values):
        problems.append(f"{where}: {s['n']} points drawn, {len(values)} values in the JSON")
        return
    if len(values) < 2:
        problems.append(f"{where}: fewer than two values, nothing to draw")
        return
    if s["length"] <= 0 or s["hit"] < 0.9:
        problems.append(f"{where}: not painted (length {s['length']:.1f}, hit {s['hit']:.2f})")
    x, y, w, h = s["bbox"]
    to_value = lambda py: (base - py) / (base - top) * top_value
    tol = 0.01 * top_value + top_value / (base - top)
    if abs(to_value(y) - max(values)) > tol or abs(to_value(y + h) - min(values)) > tol:
        problems.append(f"{where}: drawn range {to_value(y + h):.3g}..{to_value(y):.3g}, "
                        f"data {min(values):.3g}..{max(values):.3g}")
    sx = lambda t: left + (right - left) * t / x_max
    first, last = sx(seconds[0] + 0.5), sx(seconds[-1] + 0.5)
    if abs(x - first) > 1 or abs(x + w - last) > 1 or x < left - 1 or x + w > right + 1:
        problems.append(f"{where}: drawn over x {x:.1f}..{x + w:.1f}, expected {first:.1f}..{last:.1f}")


def check_histogram(problems, drawn, ok_total):
    bars = drawn["bars"]
    if not bars:
        problems.append("latency-histogram: no bars")
        return
    painted = [b for b in bars if b["hit"] and b["bbox"][2] > 0 and b["bbox"][3] > 0]
    if len(painted) != len(bars):
        problems.append(f"latency-histogram: {len(bars) - len(painted)} of {len(bars)} bars not painted")
    if sum(b["count"] for b in bars) != ok_total:
        problems.append(f"latency-histogram: bars count {sum(b['count'] for b in bars)}, ok replies {ok_total}")
    # The tallest bar fills the plot: base - top of the vertical grid lines.
    vertical = [g for g in drawn["grid"] if abs(g[0] - g[2]) < 1e-6]
    if vertical:
        plot_h = max(max(g[1], g[3]) for g in vertical) - min(min(g[1], g[3]) for g in vertical)
        tallest = max(b["bbox"][3] for b in bars)
        if abs(tallest - plot_h) > 1:
            problems.append(f"latency-histogram: tallest bar {tallest:.1f} px, plot {plot_h:.1f} px")


def check(parsed, result):
    """Every problem found in one rendered report (empty: the charts drew the run)."""
    ids = ["throughput", "latency", "errors", "latency-histogram"]
    if parsed.measured is None:
        return ["the measuring script did not run"]
    problems = [f"{i}: not measured" for i in ids if i not in parsed.charts]
    problems += [f"{i}: zero size" for i in ids
                 if i in parsed.charts and (parsed.charts[i]["width"] <= 0 or parsed.charts[i]["height"] <= 0)]
    if problems:
        return problems
    rows = result["series"]
    x_max = max(1, math.ceil(result["duration_s"]))
    seconds = [r["second"] for r in rows]
    answered = [r for r in rows if r["ok"]]
    plan = [("throughput", "sent/s", seconds, [r["sent"] for r in rows]),
            ("throughput", "ok/s", seconds, [r["ok"] for r in rows]),
            ("latency", "p50", [r["second"] for r in answered], [r["p50_ms"] for r in answered]),
            ("latency", "p99", [r["second"] for r in answered], [r["p99_ms"] for r in answered]),
            ("errors", "errors/s", seconds, [r["errors"] for r in rows])]
    for chart_id, label, xs, values in plan:
        try:
            check_series(problems, chart_id, parsed.charts[chart_id], label, xs, values, x_max)
        except ValueError as e:
            problems.append(f"{chart_id}: {e}")
    check_histogram(problems, parsed.charts["latency-histogram"], sum(p["ok"] for p in result["phases"]))
    return problems


def offline_problems(report):
    """A report must load nothing: no scripts, stylesheets, images or fonts from anywhere."""
    problems = []
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", report)) - {"http://www.w3.org/2000/svg"}
    if urls:
        problems.append(f"external references: {sorted(urls)[:5]}")
    for pattern in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        if pattern in report:
            problems.append(f"report contains {pattern}")
    return problems


def tampered(report):
    """Reports a correct checker must reject, by what was broken."""
    ok_line = re.compile(r'(data-series="ok/s"[^>]*points=")[^"]*(")')
    assert ok_line.search(report), "ok/s polyline not found"
    return {
        "empty ok/s series": ok_line.sub(r"\1\2", report),
        "hidden p99 series": report.replace(
            "</style>", 'svg .series[data-series="p99"]{visibility:hidden}</style>'),
        "histogram without bars": re.sub(r'<rect class="bar".*?</rect>', "", report),
        "p50 drawn off its axis": re.sub(
            r'(data-series="p50"[^>]*points=")([^"]*)(")',
            lambda m: m[1] + " ".join(f"{x},{float(y) / 2:.1f}" for x, y in
                                      (pt.split(",") for pt in m[2].split())) + m[3], report),
    }


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    troupe, repo = sys.argv[1], sys.argv[2]
    chromium = find_chromium()
    if not chromium:
        print("SKIP: no chromium on PATH (tools/install-deps.sh installs Debian's chromium)")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="troupe-report-") as work:
        scenario = os.path.join(work, "browser-check.yaml")
        with open(scenario, "w") as f:
            f.write(SCENARIO)
        report, result = os.path.join(work, "report.html"), os.path.join(work, "result.json")
        subprocess.run([troupe, "load", scenario, "--in-process", repo, "--quiet",
                        "--html", report, "--json", result], check=True, timeout=60)
        with open(report, encoding="utf-8") as f:
            text = f.read()
        with open(result) as f:
            data = json.load(f)

        def problems_of(name, page_text):
            page = os.path.join(work, name + ".html")
            with open(page, "w", encoding="utf-8") as f:
                f.write(page_text.replace("</body>", MEASURE + "</body>"))
            return check(render(chromium, page, work), data)

        failed = False
        problems = offline_problems(text) + problems_of("measured", text)
        for p in problems:
            print("FAIL report:", p)
        failed |= bool(problems)
        if not problems:
            print(f"ok: 4 charts drawn for {len(data['series'])} seconds, "
                  f"{sum(p['ok'] for p in data['phases'])} replies")
        for i, (what, page_text) in enumerate(tampered(text).items()):
            caught = problems_of(f"tampered{i}", page_text)
            if caught:
                print(f"ok: {what} caught: {caught[0]}")
            else:
                print(f"FAIL: {what} passed the check")
                failed = True
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
