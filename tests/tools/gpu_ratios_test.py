#!/usr/bin/env python3
"""gpu_ratios_test: tools/gpu_ratios.py reads the three benchmark tables as the programs print
them and computes the ratios and target verdicts from their figures."""
import os
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")
sys.path.insert(0, TOOLS)
import gpu_ratios  # noqa: E402

TROUPE = """
GPU backend (gpu_session: ...) on NVIDIA H200

| model | precision | batch | items/s | ms/batch | items/s on device | ms/batch on device |
|---|---|---:|---:|---:|---:|---:|
| resnet50 | fp16 | 256 | 2000 | 128.000 | 4000 | 64.000 |
| resnet50 (NHWC) | fp16 | 256 | 2000 | 128.000 | 6000 | 42.667 |
| resnet50 | bf16 | 256 | 1900 | 134.737 | 5000 | 51.200 |
| resnet50 (NHWC) | bf16 | 256 | 1800 | 142.222 | 4500 | 56.889 |
| resnet50 | fp32 | 256 | 900 | 284.444 | 1200 | 213.333 |
| bert_encoder | fp16 | 8 | 5000 | 1.600 | 9000 | 0.889 |
| seed_cnn | fp16 | - | error: something | | | |
"""

TORCH = """
PyTorch 2.5.1 eager on NVIDIA H200

| torch | model | precision | batch | items/s | ms/batch | items/s on device | ms/batch on device |
|---|---|---|---:|---:|---:|---:|---:|
| torch 2.5.1 | resnet50 | fp16 | 256 | 2500 | 102.400 | 5000 | 51.200 |
| torch 2.5.1 | resnet50 | fp32 | 256 | 1000 | 256.000 | 1500 | 170.667 |
| torch 2.5.1 | bert_encoder | fp16 | 8 | 4000 | 2.000 | 6000 | 1.333 |
| torch 2.5.1 | bert_encoder (nn.TransformerEncoder) | fp16 | 8 | 4500 | 1.778 | 10000 | 0.800 |
"""

SERVING = """
Served as KIND_GPU pipeline stages (fp32, batch 64; ...)

| model | stages | devices | items/s | whole items/s |
|---|---:|---|---:|---:|
| seed_cnn | 2 | 0,0 | 1000 | 1100 |

Served end to end (...)

| model | precision | batch | raw items/s | served items/s (1-item requests) | ratio | served items/s (batch requests) | ratio |
|---|---|---:|---:|---:|---:|---:|---:|
| resnet50 | fp16 | 256 | 2000 | 1500 | 0.75 | 1800 | 0.90 |
| bert_encoder | fp16 | 8 | 5000 | 4000 | 0.80 | 4100 | 0.82 |
"""


def row_of(lines, prefix):
    return [l for l in lines if l.startswith(prefix)]


class GpuRatiosTest(unittest.TestCase):
    def test_tables_skip_separators_and_keep_each_table(self):
        found = gpu_ratios.tables(SERVING)
        self.assertEqual([h[0:2] for h, _ in found], [["model", "stages"], ["model", "precision"]])
        self.assertEqual(len(found[1][1]), 2)

    def test_ratios_against_torch_and_targets(self):
        lines, compared = gpu_ratios.against_torch(TROUPE, TORCH)
        self.assertTrue(compared)
        # The NHWC row is faster on device (6000 against 4000): it stands for the case.
        self.assertEqual(row_of(lines, "| resnet50 | fp16 | 256 |"), [])
        r50 = row_of(lines, "| resnet50 (NHWC) | fp16 | 256 |")
        self.assertEqual(len(r50), 1)
        # 6000 / 5000 on device, 2000 / 2500 host to host; the target is judged on device.
        self.assertIn("| 1.20x | 0.80x | >= 1.0x: met |", r50[0])
        # Where the plain layout is faster, it stands (no torch bf16 row: not compared).
        self.assertEqual(len(row_of(lines, "| resnet50 | bf16 | 256 | 5000 |")), 1)
        self.assertEqual(row_of(lines, "| resnet50 (NHWC) | bf16"), [])
        fp32 = row_of(lines, "| resnet50 | fp32 | 256 |")[0]
        self.assertIn("| 0.80x | 0.90x |  |", fp32)  # no target for fp32
        # The encoder is held against the faster PyTorch version: 9000 / 10000.
        bert = row_of(lines, "| bert_encoder (vs nn.TransformerEncoder) | fp16 | 8 |")
        self.assertEqual(len(bert), 1)
        self.assertIn("| 0.90x | 1.11x | >= 1.0x: MISSED |", bert[0])
        self.assertEqual(row_of(lines, "| seed_cnn"), [])  # an error row has no figures

    def test_without_torch_nothing_is_compared(self):
        lines, compared = gpu_ratios.against_torch(TROUPE, "")
        self.assertFalse(compared)
        self.assertIn("| - | - |", row_of(lines, "| resnet50 (NHWC) | fp16 | 256 |")[0])
        self.assertIn("not measured", row_of(lines, "| resnet50 (NHWC) | fp16 | 256 |")[0])

    def test_served_takes_the_better_request_kind(self):
        lines = gpu_ratios.served(SERVING)
        self.assertIn("| 0.75x | 0.90x | >= 0.85x: met |", row_of(lines, "| resnet50 |")[0])
        self.assertIn("| 0.80x | 0.82x | >= 0.85x: MISSED |", row_of(lines, "| bert_encoder |")[0])
        self.assertEqual(row_of(lines, "| seed_cnn"), [])  # the pipeline table is another one

    def test_a_case_measured_twice_counts_once(self):
        # The GPU check measures the targets' cases first, then again in its full sweep, and
        # hands each side's logs over together.
        again_troupe = TROUPE + TROUPE.replace("| 6000 | 42.667 |", "| 5500 | 46.545 |")
        again_torch = TORCH + TORCH.replace("| 5000 | 51.200 |", "| 4000 | 64.000 |")
        lines, _ = gpu_ratios.against_torch(again_troupe, again_torch)
        r50 = row_of(lines, "| resnet50 (NHWC) | fp16 | 256 |")
        self.assertEqual(len(r50), 1)  # each side's faster figure: 6000 / 5000
        self.assertIn("| 6000 | 5000 | 1.20x |", r50[0])
        later = SERVING.replace("| 1500 | 0.75 | 1800 | 0.90 |", "| 1000 | 0.50 | 1600 | 0.80 |")
        served = row_of(gpu_ratios.served(SERVING + later), "| resnet50 |")
        self.assertEqual(len(served), 1)  # the later row: 1000 and 1600 of 2000
        self.assertIn("| 0.50x | 0.80x | >= 0.85x: MISSED |", served[0])
        # A later row whose serving failed (raw figure, error instead of served ones) does
        # not replace a complete one.
        failed = SERVING.replace("| 1500 | 0.75 | 1800 | 0.90 |", "| error: no memory | | | |")
        served = row_of(gpu_ratios.served(SERVING + failed), "| resnet50 |")
        self.assertEqual(len(served), 1)
        self.assertIn("| 0.75x | 0.90x | >= 0.85x: met |", served[0])

    def test_command_line_prints_both_sections(self):
        with tempfile.TemporaryDirectory() as d:
            paths = {}
            for name, text in (("troupe", TROUPE), ("torch", TORCH), ("serving", SERVING)):
                paths[name] = os.path.join(d, name + ".log")
                with open(paths[name], "w", encoding="utf-8") as f:
                    f.write(text)
            out = subprocess.run([sys.executable, os.path.join(TOOLS, "gpu_ratios.py"),
                                  "--troupe", paths["troupe"], "--torch", paths["torch"],
                                  "--serving", paths["serving"]],
                                 check=True, capture_output=True, text=True).stdout
        self.assertIn("## Targets", out)
        self.assertIn("| resnet50 (NHWC) | fp16 | 256 | 6000 | 5000 | 1.20x | 0.80x | >= 1.0x: met |",
                      out)
        self.assertIn("Served end to end", out)


if __name__ == "__main__":
    unittest.main()
