#!/usr/bin/env bash
# Checks `troupe load` against independent load generators on one `troupe serve`, in one run,
# taking turns (never concurrently): wrk for the closed loop, httperf (open loop, a connection
# per request) and hey (one keep-alive worker paced to a fixed rate) for the constant rate.
# Prints a markdown table of throughput and latency ratios (troupe load / the other tool) and
# exits 1 when any ratio is off by more than TOLERANCE.
#
# Usage: tools/check-load-agreement.sh [BUILD_DIR]   (default: build; needs BUILD_DIR/apps/troupe)
# Env:   CONCURRENCY (closed loop, default 4), RATE (httperf requests/s, default 500),
#        HEY_RATE (hey requests/s, default 200),
#        SECONDS_PER_RUN (10), ROUNDS (2; each tool's figures are averaged), TOLERANCE (0.10)
# Needs: wrk, httperf, hey, curl, python3 (tools/install-deps.sh).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo_root/build}"
troupe="$build/apps/troupe"
concurrency="${CONCURRENCY:-4}"
rate="${RATE:-500}"
hey_rate="${HEY_RATE:-200}"
secs="${SECONDS_PER_RUN:-10}"
rounds="${ROUNDS:-2}"
tolerance="${TOLERANCE:-0.10}"
for tool in wrk httperf hey curl python3; do
  command -v "$tool" > /dev/null || { echo "check-load-agreement: $tool not found (tools/install-deps.sh)" >&2; exit 1; }
done
[ -x "$troupe" ] || { echo "check-load-agreement: no $troupe (build the troupe target)" >&2; exit 1; }

work="$(mktemp -d /tmp/troupe-agreement.XXXXXX)"
server=""
cleanup() {
  [ -z "$server" ] || kill "$server" 2> /dev/null || true
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The server: the bundled seed CNN with a 2 ms batching window instead of its 0.5 ms, because
# httperf prints latencies in 0.1 ms steps: at ~2.5 ms its rounding stays within 2 %.
mkdir -p "$work/repo/seed_cnn/1"
cp "$repo_root/models/seed_cnn/1/model.onnx" "$work/repo/seed_cnn/1/"
cat > "$work/repo/seed_cnn/config.yaml" << 'CONF'
max_batch_size: 64
dynamic_batching:
  max_queue_delay_microseconds: 2000
CONF
"$troupe" serve --model-repository "$work/repo" --http-port 0 > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
  grep -q "listening on" "$work/serve.log" 2> /dev/null && break
  sleep 0.1
done
port="$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$work/serve.log")"
[ -n "$port" ] || { echo "check-load-agreement: troupe serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
url="http://127.0.0.1:$port"
infer="/v2/models/seed_cnn/infer"
input="$(curl -s "$url/v2/models/seed_cnn" | python3 -c 'import json,sys; print(json.load(sys.stdin)["inputs"][0]["name"])')"

# One request for every tool: sample.npy for troupe load, and the exact JSON body troupe load
# sends for it (the same bytes: values k/8 print identically in C++ and Python) for the others.
python3 - "$work" "$input" "$infer" << 'PY'
import random, struct, sys
work, name, infer = sys.argv[1:]
values = [random.randint(-8, 8) / 8 for _ in range(784)]
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 28, 28), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(f"{work}/sample.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<784f", *values))
# troupe load's default timeout_ms (10 s) travels as the request's timeout parameter.
body = ('{"inputs":[{"name":"%s","shape":[1,1,28,28],"datatype":"FP32","data":[%s]}],'
        '"parameters":{"timeout":10000000}}' % (name, ",".join("%g" % v for v in values)))
with open(f"{work}/body.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = [[%s]]\n" % body)
with open(f"{work}/body.json", "w") as f:
    f.write(body)
with open(f"{work}/session.txt", "w") as f:
    f.write("%s method=POST contents='%s'\n" % (infer, body))
PY
scenario() { # NAME ARRIVAL CONNECTIONS
  cat > "$work/$1.yaml" << YAML
name: agreement-$1
transport: http_json
connections: $3
models: [seed_cnn]
payload: {kind: npy, images: $work/sample.npy}
phases:
  - name: $1
    duration_s: $secs
    arrival: $2
YAML
}
scenario closed "{process: closed, concurrency: $concurrency}" "$concurrency"
scenario rate "{process: constant, rate: $rate}" 64
scenario paced "{process: constant, rate: $hey_rate}" 64

wrk_cmd=(wrk -t1 "-c$concurrency" "-d${secs}s" --latency -s "$work/body.lua" "$url$infer")
# httperf: one session (a new connection, one request) every 1/RATE s; --hog lets it use
# the whole local port range.
httperf_cmd=(httperf --hog --server 127.0.0.1 --port "$port" --rate "$rate" --timeout 10
             "--add-header=Content-Type: application/json\n"
             "--wsesslog=$((rate * secs)),0,$work/session.txt")
# hey: one keep-alive worker paced to HEY_RATE requests/s. Its period (5 ms at 200/s) is
# twice the server's latency, so every send leaves on the tick: a constant rate, whose median
# hey reports at 0.1 ms resolution (httperf's median has 1 ms bins). Several paced workers
# would not do: hey starts their tickers together, so their sends come in bursts.
hey_cmd=(hey -n "$((hey_rate * secs))" -c 1 -q "$hey_rate" -m POST
         -T application/json -D "$work/body.json" "$url$infer")
echo "closed loop: ${wrk_cmd[*]/$work\//}  vs  troupe load closed.yaml (closed x$concurrency, $secs s)" >&2
echo "constant rate: ${httperf_cmd[*]/$work\//}  vs  troupe load rate.yaml (constant $rate/s, $secs s)" >&2
echo "constant rate: ${hey_cmd[*]/$work\//}  vs  troupe load paced.yaml (constant $hey_rate/s, $secs s)" >&2

"${wrk_cmd[@]/-d${secs}s/-d2s}" > /dev/null # warm-up: plans for the batch sizes that occur
for r in $(seq 1 "$rounds"); do
  "${wrk_cmd[@]}" > "$work/wrk.$r.txt"
  "$troupe" load "$work/closed.yaml" --url "$url" --quiet --json "$work/closed.$r.json" > /dev/null
  "${httperf_cmd[@]}" > "$work/httperf.$r.txt" 2>&1
  "$troupe" load "$work/rate.yaml" --url "$url" --quiet --json "$work/rate.$r.json" > /dev/null
  "${hey_cmd[@]}" > "$work/hey.$r.txt" 2>&1
  "$troupe" load "$work/paced.yaml" --url "$url" --quiet --json "$work/paced.$r.json" > /dev/null
  echo "round $r of $rounds done" >&2
done

python3 - "$work" "$rounds" "$tolerance" "$concurrency" "$rate" "$hey_rate" << 'PY'
import json, re, sys
work, rounds, tolerance, concurrency, rate, hey_rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
problems = []

def grab(pattern, text, what):
    m = re.search(pattern, text, re.M)
    if not m:
        raise SystemExit(f"check-load-agreement: no {what} in the output:\n{text}")
    return m

def wrk(text):
    ms = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    m = grab(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", text, "wrk median")
    if "Non-2xx" in text or "Socket errors" in text:
        problems.append("wrk saw errors: " + " ".join(l.strip() for l in text.splitlines() if "rrors" in l or "Non-2xx" in l))
    return float(grab(r"^Requests/sec:\s+([\d.]+)", text, "wrk rate").group(1)), float(m.group(1)) * ms[m.group(2)]

def httperf(text):
    total = grab(r"^Total: connections \d+ requests \d+ replies (\d+) test-duration ([\d.]+) s", text, "httperf totals")
    reply = grab(r"^Reply time \[ms\]: response ([\d.]+) transfer ([\d.]+)", text, "httperf reply time")
    status = grab(r"^Reply status: 1xx=\d+ 2xx=(\d+)", text, "httperf status")
    errors = int(grab(r"^Errors: total (\d+)", text, "httperf errors").group(1))
    if errors or int(status.group(1)) != int(total.group(1)):
        problems.append(f"httperf: {errors} errors, {status.group(1)} of {total.group(1)} replies 2xx")
    return int(total.group(1)) / float(total.group(2)), float(reply.group(1)) + float(reply.group(2))

def hey(text):
    m = grab(r"^\s+50%+ in ([\d.]+) secs", text, "hey median")
    status = re.findall(r"^\s+\[(\d+)\]\s+(\d+) responses", text, re.M)
    if any(code != "200" for code, _ in status) or "Error distribution" in text:
        problems.append("hey saw errors: " + ", ".join(f"[{c}] {n}" for c, n in status))
    return float(grab(r"^\s+Requests/sec:\s+([\d.]+)", text, "hey rate").group(1)), float(m.group(1)) * 1e3
def troupe(path, statistic):
    phase = json.load(open(path))["phases"][0]
    if phase["error_count"]:
        problems.append(f"troupe load: {phase['error_count']} errors {phase['errors']}")
    return phase["throughput"], phase["latency_ms"][statistic]

def mean(pairs):
    return [sum(p[i] for p in pairs) / len(pairs) for i in range(2)]

runs = range(1, rounds + 1)
w = mean([wrk(open(f"{work}/wrk.{r}.txt").read()) for r in runs])
tc = mean([troupe(f"{work}/closed.{r}.json", "p50") for r in runs])
h = mean([httperf(open(f"{work}/httperf.{r}.txt").read()) for r in runs])
tr = mean([troupe(f"{work}/rate.{r}.json", "mean") for r in runs])
y = mean([hey(open(f"{work}/hey.{r}.txt").read()) for r in runs])
tm = mean([troupe(f"{work}/paced.{r}.json", "p50") for r in runs])
rows = [(f"closed loop x{concurrency}", "wrk", "throughput (req/s)", w[0], tc[0]),
        (f"closed loop x{concurrency}", "wrk", "median latency (ms)", w[1], tc[1]),
        (f"constant {rate}/s", "httperf", "throughput (req/s)", h[0], tr[0]),
        (f"constant {rate}/s", "httperf", "mean latency (ms)", h[1], tr[1]),
        (f"constant {hey_rate}/s", "hey", "throughput (req/s)", y[0], tm[0]),
        (f"constant {hey_rate}/s", "hey", "median latency (ms)", y[1], tm[1])]
print(f"| load | other tool | measure | other tool | troupe load | ratio |")
print("|---|---|---|---|---|---|")
for load, tool, measure, other, ours in rows:
    ratio = ours / other if other else float("inf")
    flag = "" if abs(ratio - 1) <= tolerance else " ✗"
    if flag:
        problems.append(f"{load} {measure}: troupe load {ours:.3g} vs {tool} {other:.3g}")
    print(f"| {load} | {tool} | {measure} | {other:.4g} | {ours:.4g} | {ratio:.3f}{flag} |")
print()
print(f"Mean of {rounds} alternating rounds per tool; ✗ marks a ratio off by more than "
      f"{tolerance:.0%}. httperf's median has 1 ms bins, so its row compares means; hey gives the "
      f"constant-rate median.")
for p in problems:
    print("check-load-agreement:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
