#!/usr/bin/env python3
"""test_tritonclient: drives `troupe serve` with the unmodified tritonclient HTTP client and curl.

Usage: test_tritonclient.py TROUPE_BINARY SEED_CNN_ONNX
Run by CTest through the venv of tools/e2e-venv.sh. Checks metadata, health, JSON and binary
inference on the seed CNN against `troupe run`, priority and timeout parameters, load/unload
with the API key, curl, and a SIGTERM stop with requests in flight.
"""
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

KEY = "e2e-key-123"
CONFIG = """max_batch_size: 32
dynamic_batching:
  max_queue_delay_microseconds: 500
  priority_levels: 2
  default_queue_policy:
    allow_timeout_override: true
"""


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok:", msg)


def start_server(troupe, repo, extra=()):
    proc = subprocess.Popen([troupe, "serve", "--model-repository", repo, "--http-port", "0",
                             "--api-key", KEY, "--exit-timeout", "10", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on http://([0-9.]+):(\d+)", line)
    if not m:
        proc.kill()
        fail("server did not start: " + line + proc.stdout.read())
    return proc, f"{m.group(1)}:{m.group(2)}"


def main():
    troupe, onnx_path = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="troupe-e2e-")
    try:
        repo = os.path.join(work, "repo")
        os.makedirs(os.path.join(repo, "seed_cnn", "1"))
        shutil.copy(onnx_path, os.path.join(repo, "seed_cnn", "1", "model.onnx"))
        with open(os.path.join(repo, "seed_cnn", "config.yaml"), "w") as f:
            f.write(CONFIG)
        run(troupe, repo, work, onnx_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("all tritonclient/curl checks passed")


def run(troupe, repo, work, onnx_path):
    proc, url = start_server(troupe, repo)
    try:
        client = httpclient.InferenceServerClient(url=url)
        check(client.is_server_live(), "server live")
        check(client.is_server_ready(), "server ready")
        meta = client.get_server_metadata()
        check(meta["name"] == "troupe" and "binary_tensor_data" in meta["extensions"],
              "server metadata")
        mm = client.get_model_metadata("seed_cnn")
        inp, out = mm["inputs"][0], mm["outputs"][0]
        check(inp["shape"] == [-1, 1, 28, 28] and inp["datatype"] == "FP32",
              f"model metadata input {inp}")
        check(out["shape"][0] == -1, f"model metadata output {out}")
        check(client.is_model_ready("seed_cnn"), "model ready")

        # Reference: troupe run on the same input.
        x = np.random.default_rng().standard_normal((4, 1, 28, 28)).astype(np.float32)
        np.save(os.path.join(work, "x.npy"), x)
        outdir = os.path.join(work, "ref")
        subprocess.run([troupe, "run", onnx_path, "-i", os.path.join(work, "x.npy"), "-o", outdir],
                       check=True, capture_output=True)
        ref = np.load(os.path.join(outdir, out["name"] + ".npy"))

        for binary in (False, True):
            i = httpclient.InferInput(inp["name"], list(x.shape), "FP32")
            i.set_data_from_numpy(x, binary_data=binary)
            o = httpclient.InferRequestedOutput(out["name"], binary_data=binary)
            r = client.infer("seed_cnn", [i], outputs=[o], request_id="r1")
            y = r.as_numpy(out["name"])
            err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
            check(y.shape == ref.shape and err < 1e-5,
                  f"{'binary' if binary else 'JSON'} inference matches troupe run (rel err {err:.2e})")
            check(r.get_response()["id"] == "r1", "request id echoed")

        i = httpclient.InferInput(inp["name"], [1, 1, 28, 28], "FP32")
        i.set_data_from_numpy(x[:1], binary_data=True)
        r = client.infer("seed_cnn", [i], priority=1, timeout=5_000_000)
        check(r.as_numpy(out["name"]).shape == (1, ref.shape[1]), "priority and timeout accepted")
        try:
            client.infer("seed_cnn", [i], priority=7)
            fail("priority 7 of 2 levels was accepted")
        except InferenceServerException as e:
            check(e.status() == "400" and "priority" in e.message(),
                  f"bad priority refused: {e.status()} {e.message()}")

        try:
            client.unload_model("seed_cnn")
            fail("unload without API key succeeded")
        except InferenceServerException as e:
            check(e.status() == "401", "unload without key: 401")
        auth = {"Authorization": "Bearer " + KEY}
        client.unload_model("seed_cnn", headers=auth)
        check(not client.is_model_ready("seed_cnn"), "unloaded model is not ready")
        index = client.get_model_repository_index(headers=auth)
        check(index == [{"name": "seed_cnn", "state": "UNAVAILABLE", "reason": "unloaded"}],
              f"repository index after unload {index}")
        client.load_model("seed_cnn", headers=auth)
        check(client.is_model_ready("seed_cnn"), "loaded model is ready")

        # curl
        code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               f"http://{url}/v2/health/live"], capture_output=True, text=True).stdout
        check(code == "200", "curl health/live")
        body = '{"inputs":[{"name":"%s","shape":[1,1,28,28],"datatype":"FP32","data":%s}]}' % (
            inp["name"], "[" + ",".join(repr(float(v)) for v in x[0].ravel()) + "]")
        res = subprocess.run(["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json",
                              "--data-binary", "@-", f"http://{url}/v2/models/seed_cnn/infer"],
                             input=body, capture_output=True, text=True).stdout
        check('"model_name":"seed_cnn"' in res and '"shape":[1,10]' in res.replace(" ", ""),
              "curl JSON inference")
        metrics = subprocess.run(["curl", "-s", f"http://{url}/metrics"], capture_output=True,
                                 text=True).stdout
        check('nv_inference_request_success{model="seed_cnn",version="1"}' in metrics,
              "curl /metrics")

        # SIGTERM with requests in flight: each gets an answer, the process exits 0 in time.
        def one(_):
            c = httpclient.InferenceServerClient(url=url)
            j = httpclient.InferInput(inp["name"], [4, 1, 28, 28], "FP32")
            j.set_data_from_numpy(x, binary_data=True)
            try:
                c.infer("seed_cnn", [j])
                return "200"
            except InferenceServerException as e:
                return e.status()
            except Exception as e:  # connection closed after stop: no answer at all
                return "closed: " + repr(e)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, k) for k in range(8)]
            time.sleep(0.05)  # let some requests reach the server before the signal
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            results = [f.result() for f in futures]
        rc = proc.wait(timeout=15)
        took = time.monotonic() - started
        check(all(s in ("200", "503") or s.startswith("closed") for s in results),
              f"in-flight requests answered during stop: {results}")
        check(rc == 0 and took < 10, f"SIGTERM: exit code {rc} after {took:.2f}s")
    finally:
        if proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    main()
