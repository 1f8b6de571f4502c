#!/usr/bin/env python3
"""Peer benchmark: troupe vs ONNX Runtime vs PyTorch on the models from tools/export_models.py.

Run with the venv python made by tools/bench-venv.sh (Debian torch + PyPI onnxruntime):

    .venv/bin/python tools/peer_bench.py --models /tmp/models --batch 1,8,64 --threads 2 \\
        --seconds 6 [--troupe build/apps/troupe] [--markdown peers.md]

Method
  * Each runtime lives in its own long-lived worker process (so one runtime's thread pool and
    allocations never share a process with another's); the parent only coordinates.
      ORT      onnxruntime.InferenceSession on DIR/NAME.onnx, CPU provider,
               intra_op_num_threads=T, inter_op_num_threads=1, sequential, ORT_ENABLE_ALL.
      PyTorch  the eager model rebuilt by export_models.build_model (same code, same seed, so
               the same weights), torch.set_num_threads(T), interop threads 1, run under
               torch.inference_mode. For bert_encoder the default is PyTorch's own
               nn.TransformerEncoder with the same weights (its fused inference fast path, what a
               PyTorch user runs); --torch-bert plain times the hand-written exported graph.
      troupe   `TROUPE bench NAME.onnx --batch B --threads T --seconds s --json` per round,
               reading {"results":[{"batch","items_per_s","latency_ms_p50","peak_rss_kb"}]}.
  * Both Python workers first check their output on DIR/NAME.input.npy against NAME.output.npy
    (max |diff| is printed in the report).
  * For every model and batch each runtime is warmed up, then measured in --rounds interleaved
    rounds (ort, torch, troupe, ort, torch, troupe, ...) of --seconds/--rounds seconds each.
    items/s = items run / time in the round; latency = p50 of per-call latency in the round;
    the table shows the median over rounds. All runtimes get the same input for batch B.
  * Peak memory: ORT and PyTorch each run the model at batch B (1 warm-up + 3 calls) in a fresh
    child process whose peak RSS comes from os.wait4 (the per-child form of
    getrusage(RUSAGE_CHILDREN).ru_maxrss); the ORT child never imports torch. A child that only
    imports the runtime gives the baseline. troupe's figure is the max RSS of its bench
    processes measured the same way (its self-reported peak_rss_kb is shown alongside).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_ORDER = ("seed_cnn", "resnet18", "mobilenet_v2", "bert_encoder")
BENCH_INPUT_SEED = 3
RSS_CALLS = 3
WARMUP_S = 0.25


# --------------------------------------------------------------------------------------------
# Runtime adapters (imported lazily: the ORT side must never import torch)


def bench_input(meta: dict, batch: int):
    import numpy as np
    rng = np.random.default_rng(BENCH_INPUT_SEED)
    return rng.standard_normal((batch, *meta["item_shape"]), dtype=np.float32)


class OrtRunner:
    def __init__(self, model_dir: str, meta: dict, threads: int, **_):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(os.path.join(model_dir, meta["name"] + ".onnx"), so,
                                         providers=["CPUExecutionProvider"])
        self.in_name, self.out_name = meta["input_name"], meta["output_name"]

    def prepare(self, x):
        return x

    def __call__(self, x):
        return self.sess.run([self.out_name], {self.in_name: x})[0]

    def to_numpy(self, y):
        return y


class TorchRunner:
    def __init__(self, model_dir: str, meta: dict, threads: int, torch_bert: str = "native"):
        import torch
        sys.path.insert(0, HERE)
        import export_models
        self.torch = torch
        native = meta["name"] == "bert_encoder" and torch_bert == "native"
        self.model = export_models.build_model(meta["name"], native=native)

    def prepare(self, x):
        return self.torch.from_numpy(x)

    def __call__(self, x):
        with self.torch.inference_mode():
            return self.model(x)

    def to_numpy(self, y):
        return y.numpy()


RUNNERS = {"ort": OrtRunner, "torch": TorchRunner}


def runtime_setup(runtime: str, threads: int) -> str:
    if runtime == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        return torch.__version__
    import onnxruntime
    return onnxruntime.__version__


def child_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


# --------------------------------------------------------------------------------------------
# Worker process: one per Python runtime, driven over a pipe


def worker_main(conn, runtime: str, threads: int, model_dir: str, torch_bert: str) -> None:
    import numpy as np
    try:
        version = runtime_setup(runtime, threads)
        conn.send(("ok", str(version)))  # plain str: torch's TorchVersion would import torch here
    except Exception as e:  # noqa: BLE001 - report any import/setup failure to the parent
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    runner, inputs = None, {}
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "quit":
                return
            if msg[0] == "load":
                meta, runner = msg[1], None
                runner = RUNNERS[runtime](model_dir, meta, threads, torch_bert=torch_bert)
                base = os.path.join(model_dir, meta["name"])
                x = np.load(base + ".input.npy")
                y = runner.to_numpy(runner(runner.prepare(x)))
                ref = np.load(base + ".output.npy")
                diff = float(np.abs(y - ref).max()) if y.shape == ref.shape else float("nan")
                inputs = {}
                conn.send(("ok", {"max_abs_diff": diff, "ref_max_abs": float(np.abs(ref).max())}))
            elif msg[0] == "run":
                _, meta, batch, seconds, warmup = msg
                if batch not in inputs:
                    inputs[batch] = runner.prepare(bench_input(meta, batch))
                x = inputs[batch]
                if warmup:
                    t_end = time.perf_counter() + WARMUP_S
                    runner(x)
                    while time.perf_counter() < t_end:
                        runner(x)
                lat = []
                t0 = time.perf_counter()
                t_end = t0 + seconds
                while True:
                    t = time.perf_counter()
                    runner(x)
                    t2 = time.perf_counter()
                    lat.append(t2 - t)
                    if t2 >= t_end and len(lat) >= 2:
                        break
                elapsed = time.perf_counter() - t0
                conn.send(("ok", {"items_per_s": batch * len(lat) / elapsed,
                                  "latency_ms_p50": 1e3 * statistics.median(lat),
                                  "calls": len(lat)}))
        except Exception as e:  # noqa: BLE001
            conn.send(("error", f"{type(e).__name__}: {e}"))


class Worker:
    def __init__(self, runtime: str, args):
        ctx = mp.get_context("spawn")
        self.runtime = runtime
        self.conn, child = ctx.Pipe()
        old = dict(os.environ)
        os.environ.update(child_env(args.threads))  # spawn children inherit os.environ
        try:
            self.proc = ctx.Process(target=worker_main, daemon=True,
                                    args=(child, runtime, args.threads, args.models,
                                          args.torch_bert))
            self.proc.start()
        finally:
            os.environ.clear()
            os.environ.update(old)
        child.close()
        self.version = self._reply()

    def _reply(self):
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.runtime} worker: {value}")
        return value

    def call(self, *msg):
        self.conn.send(msg)
        return self._reply()

    def close(self):
        try:
            self.conn.send(("quit",))
        except OSError:
            pass
        self.proc.join(10)


# --------------------------------------------------------------------------------------------
# Child processes measured with wait4


def run_measured(cmd: list[str], env: dict | None = None, timeout: float | None = None):
    """Runs cmd, returns (returncode, stdout, stderr, peak RSS in KiB of that child)."""
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        p = subprocess.Popen(cmd, stdout=fout, stderr=ferr, env=env, text=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                raise RuntimeError(f"{shlex.join(cmd)}: no exit after {timeout:g} s, killed")
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        return p.returncode, fout.read(), ferr.read(), ru.ru_maxrss  # Linux: KiB


def rss_child_main(args) -> int:
    """Entry point of a memory-measurement child: import the runtime, optionally run a model."""
    runtime_setup(args._rss_child, args.threads)
    if args._name:
        meta = load_meta(args.models, args._name)
        runner = RUNNERS[args._rss_child](args.models, meta, args.threads,
                                          torch_bert=args.torch_bert)
        x = runner.prepare(bench_input(meta, args._rss_batch))
        for _ in range(1 + RSS_CALLS):
            runner(x)
    print(json.dumps({"vmhwm_kb": vmhwm_kb()}))
    return 0


def vmhwm_kb() -> int | None:
    """This process's own peak RSS (KiB) from /proc/self/status."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def self_maxrss_kb() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_rss(runtime: str, args, name: str = "", batch: int = 0) -> int | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--models", args.models,
           "--threads", str(args.threads), "--torch-bert", args.torch_bert,
           "--_rss-child", runtime, "--_name", name, "--_rss-batch", str(batch)]
    rc, out, err, kib = run_measured(cmd, env=child_env(args.threads), timeout=900)
    if rc != 0:
        print(f"warning: {runtime} memory child for {name or 'baseline'} b{batch} failed "
              f"(rc {rc}): {err.strip()[-500:]}", file=sys.stderr)
        return None
    # Prefer the child's own VmHWM: exact for its mm. The wait4 figure is the same number except
    # that Linux carries the launching process's peak RSS into a child across fork+exec, so it
    # can never be below this (small) parent's own peak.
    try:
        own = json.loads(out.strip().splitlines()[-1]).get("vmhwm_kb")
    except (ValueError, IndexError, AttributeError):
        own = None
    return own or kib


def run_troupe(args, meta: dict, batch: int, seconds: float) -> dict:
    cmd = [args.troupe, "bench", os.path.join(args.models, meta["name"] + ".onnx"),
           "--batch", str(batch), "--threads", str(args.threads), "--seconds", f"{seconds:g}",
           "--json", "--no-ceiling"]
    rc, out, err, kib = run_measured(cmd, timeout=seconds + args.troupe_timeout)
    if rc != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {rc}: {err.strip()[-500:]}")
    try:
        try:
            doc = json.loads(out)
        except ValueError:  # tolerate log lines before the JSON document: take the last object
            doc = json.loads(out[out.rindex("\n{") + 1:] if "\n{" in out else out)
        res = next(r for r in doc["results"] if int(r["batch"]) == batch)
    except (ValueError, KeyError, StopIteration, TypeError) as e:
        raise RuntimeError(f"{shlex.join(cmd)}: unreadable JSON ({e}): {out[:300]!r}") from e
    return {"items_per_s": float(res["items_per_s"]),
            "latency_ms_p50": float(res["latency_ms_p50"]),
            "peak_rss_kb_self": res.get("peak_rss_kb"), "peak_rss_kb_wait4": kib}


# --------------------------------------------------------------------------------------------
# Driver


def load_meta(model_dir: str, name: str) -> dict:
    with open(os.path.join(model_dir, name + ".json")) as f:
        meta = json.load(f)
    meta["name"] = name  # the file name wins: it is what the runtimes load
    meta.setdefault("item_shape", meta["input_shape"][1:])
    return meta


def discover(model_dir: str, only: str | None) -> list[str]:
    names = sorted(f[:-5] for f in os.listdir(model_dir)
                   if f.endswith(".json") and os.path.exists(os.path.join(model_dir, f[:-5] + ".onnx")))
    names.sort(key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))
    if only:
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        missing = [n for n in wanted if n not in names]
        if missing:
            sys.exit(f"peer_bench: no {missing} in {model_dir} (have {names})")
        names = [n for n in names if n in wanted]
    if not names:
        sys.exit(f"peer_bench: no NAME.json + NAME.onnx pairs in {model_dir}")
    return names


def fmt(v, spec="{:,.1f}"):
    return "—" if v is None else spec.format(v)


def mib(kib):
    return None if kib is None else kib / 1024


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def blas_provider() -> str:
    """Which library Debian's libblas.so.3 alternative (used by PyTorch's Linear/matmul) is."""
    link = "/etc/alternatives/libblas.so.3-x86_64-linux-gnu"
    try:
        target = os.path.realpath(link)
    except OSError:
        return "unknown"
    if "openblas" in target:
        return "OpenBLAS"
    if "/blas/libblas.so" in target:
        return "netlib reference BLAS (slow; install libopenblas0 for OpenBLAS)"
    return target if os.path.exists(link) else "unknown"


def render(args, names, metas, res, checks, mem, base_mem, versions, started) -> str:
    have_troupe = "troupe" in args.runtime_list
    cmd = shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
    lines = [
        "### Peer benchmark",
        "",
        f"`{cmd}`",
        "",
        f"{cpu_name()}, {os.cpu_count()} CPUs; threads {args.threads}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + (f" (libblas.so.3: {blas_provider()})" if "torch" in versions else "")
        + f"; {args.seconds:g} s per runtime per model/batch in {args.rounds} interleaved rounds "
        f"(median of rounds); {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}."
        + f" 1-min load average before the run: {args.load_start:.2f}"
        + (" (other work was using the CPUs: figures are noisy)." if args.load_start > 0.5 else ".")
        + ("" if have_troupe else " troupe not measured (no --troupe binary)."),
        "",
    ]
    hdr = ["model", "batch"]
    if have_troupe:
        hdr += ["troupe items/s"]
    hdr += ["ORT items/s", "PyTorch items/s"]
    if have_troupe:
        hdr += ["troupe/ORT", "troupe p50 ms"]
    hdr += ["ORT p50 ms", "PyTorch p50 ms", "ORT GFLOP/s"]
    lines += ["| " + " | ".join(hdr) + " |", "|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|"]
    for n in names:
        for b in args.batch_list:
            r = {rt: res.get((n, b, rt)) for rt in ("troupe", "ort", "torch")}
            ips = {rt: (v or {}).get("items_per_s") for rt, v in r.items()}
            p50 = {rt: (v or {}).get("latency_ms_p50") for rt, v in r.items()}
            row = [n, str(b)]
            if have_troupe:
                row += [fmt(ips["troupe"])]
            row += [fmt(ips["ort"]), fmt(ips["torch"])]
            if have_troupe:
                ratio = ips["troupe"] / ips["ort"] if ips["troupe"] and ips["ort"] else None
                row += [fmt(ratio, "{:.2f}"), fmt(p50["troupe"], "{:.2f}")]
            gf = ips["ort"] * metas[n]["flops_per_item"] / 1e9 if ips["ort"] else None
            row += [fmt(p50["ort"], "{:.2f}"), fmt(p50["torch"], "{:.2f}"), fmt(gf, "{:.1f}")]
            lines.append("| " + " | ".join(row) + " |")
    if mem or have_troupe:
        floor = (f" troupe's figure is wait4's ru_maxrss, which Linux never reports below the "
                 f"launching process's own peak ({fmt(mib(self_maxrss_kb()))} MiB here)."
                 if have_troupe else "")
        lines += ["", "Peak RSS (MiB) of a process that loads the model and runs batch B "
                  f"(1 warm-up + {RSS_CALLS} calls; troupe: its bench runs)." + floor
                  + (" Import-only baselines: " + ", ".join(
                      f"{'ORT' if k == 'ort' else 'PyTorch'} {fmt(mib(v))}"
                      for k, v in base_mem.items()) + "." if base_mem else ""), ""]
        hdr = ["model", "batch"] + (["troupe MiB", "troupe self-reported MiB"] if have_troupe else [])
        hdr += ["ORT MiB", "PyTorch MiB"]
        lines += ["| " + " | ".join(hdr) + " |", "|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|"]
        for n in names:
            for b in args.batch_list:
                row = [n, str(b)]
                if have_troupe:
                    t = res.get((n, b, "troupe")) or {}
                    row += [fmt(mib(t.get("peak_rss_kb_wait4"))), fmt(mib(t.get("peak_rss_kb_self")))]
                row += [fmt(mib(mem.get((n, b, "ort")))), fmt(mib(mem.get((n, b, "torch"))))]
                lines.append("| " + " | ".join(row) + " |")
    if checks:
        lines += ["", "Output check on NAME.input.npy vs NAME.output.npy (max |diff|; max |ref|): "
                  + "; ".join(f"{n} ORT {fmt(c.get('ort'), '{:.2g}')}, PyTorch "
                              f"{fmt(c.get('torch'), '{:.2g}')} ({fmt(c.get('ref'), '{:.3g}')})"
                              for n, c in checks.items()) + "."]
    if args.errors:
        lines += ["", "Errors:"] + [f"* {e}" for e in args.errors]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="troupe vs ONNX Runtime vs PyTorch throughput/memory")
    ap.add_argument("--models", required=True, help="directory written by tools/export_models.py")
    ap.add_argument("--names", help="comma-separated subset of the models in --models")
    ap.add_argument("--batch", default="1,8,64", help="comma-separated batch sizes (1,8,64)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=6.0,
                    help="measured seconds per runtime per model/batch, split over the rounds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--troupe", help="path to the troupe binary (troupe columns skipped if absent)")
    ap.add_argument("--runtimes", default="troupe,ort,torch", help="subset of troupe,ort,torch")
    ap.add_argument("--torch-bert", choices=("native", "plain"), default="native",
                    help="PyTorch bert_encoder: nn.TransformerEncoder (native) or exported graph")
    ap.add_argument("--troupe-timeout", type=float, default=120.0,
                    help="seconds a troupe bench call may run beyond its --seconds (120)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS children")
    ap.add_argument("--markdown", help="also write the report to this file")
    ap.add_argument("--_rss-child", dest="_rss_child", help=argparse.SUPPRESS)
    ap.add_argument("--_name", default="", help=argparse.SUPPRESS)
    ap.add_argument("--_rss-batch", dest="_rss_batch", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.models = os.path.abspath(args.models)

    if args._rss_child:
        return rss_child_main(args)

    started = time.time()
    args.load_start = os.getloadavg()[0]
    args.batch_list = [int(b) for b in args.batch.split(",") if b.strip()]
    if not args.batch_list or min(args.batch_list) < 1 or args.threads < 1 or args.rounds < 1:
        ap.error("batches, --threads and --rounds must be >= 1")
    args.runtime_list = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    args.errors = []
    if "troupe" in args.runtime_list:
        if not args.troupe:
            args.runtime_list.remove("troupe")
        elif not (os.path.isfile(args.troupe) and os.access(args.troupe, os.X_OK)):
            print(f"peer_bench: troupe binary {args.troupe!r} not found; skipping troupe",
                  file=sys.stderr)
            args.runtime_list.remove("troupe")
    names = discover(args.models, args.names)
    metas = {n: load_meta(args.models, n) for n in names}

    workers, versions = {}, {}
    try:
        for rt, label in (("ort", "onnxruntime"), ("torch", "torch")):
            if rt in args.runtime_list:
                workers[rt] = Worker(rt, args)
                versions[label] = workers[rt].version
        res, checks = {}, {}
        per_round = args.seconds / args.rounds
        for n in names:
            meta = metas[n]
            checks[n] = {}
            active = [rt for rt in args.runtime_list if rt not in workers]  # troupe
            for rt, w in workers.items():
                try:
                    c = w.call("load", meta)
                except RuntimeError as e:
                    args.errors.append(f"{n} {rt} load: {e}")
                    print(f"peer_bench: {args.errors[-1]}", file=sys.stderr)
                    continue
                active.append(rt)
                checks[n][rt], checks[n]["ref"] = c["max_abs_diff"], c["ref_max_abs"]
            active.sort(key=args.runtime_list.index)
            for b in args.batch_list:
                rounds = {rt: [] for rt in active}
                for r in range(args.rounds):
                    for rt in active:
                        try:
                            if rt == "troupe":
                                out = run_troupe(args, meta, b, per_round)
                            else:
                                out = workers[rt].call("run", meta, b, per_round, r == 0)
                            rounds[rt].append(out)
                        except Exception as e:  # noqa: BLE001 - keep the other runtimes going
                            args.errors.append(f"{n} b{b} {rt}: {e}")
                            print(f"peer_bench: {args.errors[-1]}", file=sys.stderr)
                for rt, outs in rounds.items():
                    if not outs:
                        continue
                    agg = {"items_per_s": statistics.median(o["items_per_s"] for o in outs),
                           "latency_ms_p50": statistics.median(o["latency_ms_p50"] for o in outs)}
                    if rt == "troupe":
                        agg["peak_rss_kb_wait4"] = max(o["peak_rss_kb_wait4"] for o in outs)
                        selfrep = [o["peak_rss_kb_self"] for o in outs if o["peak_rss_kb_self"]]
                        agg["peak_rss_kb_self"] = max(selfrep) if selfrep else None
                    res[(n, b, rt)] = agg
                print(f"{n} b{b}: " + ", ".join(
                    f"{rt} {res[(n, b, rt)]['items_per_s']:,.1f}/s" for rt in args.runtime_list
                    if (n, b, rt) in res), file=sys.stderr, flush=True)
    finally:
        for w in workers.values():
            w.close()

    mem, base_mem = {}, {}
    if not args.no_memory:
        for rt in ("ort", "torch"):
            if rt in args.runtime_list:
                base_mem[rt] = measure_rss(rt, args)
        for n in names:
            for b in args.batch_list:
                for rt in ("ort", "torch"):
                    if rt in args.runtime_list:
                        mem[(n, b, rt)] = measure_rss(rt, args, n, b)

    heavy = sorted(m for m in ("torch", "onnxruntime", "numpy") if m in sys.modules)
    if heavy:  # would inflate the parent's peak RSS, the floor of every wait4 figure
        print(f"peer_bench: warning: coordinator imported {heavy}", file=sys.stderr)
    report = render(args, names, metas, res, checks, mem, base_mem, versions, started)
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report)
    return 1 if args.errors else 0


if __name__ == "__main__":
    sys.exit(main())
