#!/usr/bin/env bash
# gpu-check: on a GPU machine, runs a bundle made by tools/gpu-bundle.sh: finds the NVIDIA
# libraries (system toolkit or nvidia-*-cu13 pip wheels), runs every GPU test binary, then every
# GPU benchmark and, when PyTorch imports, its figures for the same cases, then the targets
# table (tools/gpu_ratios.py: troupe/torch, served/raw); prints a report with the GPU's name
# and writes it (and every log) under $OUT when set. Stays under 8 minutes: each step has a
# deadline within the budget, and the cases the issue's targets name (ResNet-50 and the encoder
# at fp16, troupe and PyTorch, raw and served) are measured first, so the targets table is whole
# even when the full sweeps that follow run out of time (their rows print as they are measured).
# bench_gpu_serving gives the served rows: models served end to end through the actors
# (KIND_GPU) next to the raw backend, with the served/raw ratio.
#   tools/gpu-check.sh [bundle.tar.gz | unpacked troupe-gpu folder]
set -uo pipefail
src=${1:-build-gpu/gpu-bundle.tar.gz}
budget=${TROUPE_GPU_CHECK_SECONDS:-450} # the whole run; each step gets what is left
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$src" ]; then
  root=$(cd "$src" && pwd)
else
  tar -C "$work" -xzf "$src" || { echo "gpu-check: cannot unpack $src" >&2; exit 2; }
  root=$work/troupe-gpu
fi
out=${OUT:-$work/out}
mkdir -p "$out"
report=$out/gpu-check.md

# --- the NVIDIA libraries: first place that has each one -------------------------------------
candidates=("${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/lib
  /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/lib64)
for py in python3 python; do
  command -v "$py" >/dev/null || continue
  while read -r site; do
    [ -d "$site/nvidia" ] && while read -r d; do candidates+=("$d"); done < <(
      find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u)
  done < <("$py" -c 'import site
print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)
  break
done
while read -r lib; do candidates+=("$(dirname "$lib")"); done < <(
  ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1|libcudnn\.so\.9|libnccl\.so\.2/ {print $NF}')
libpath=$root/lib
missing=()
for want in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 \
  libnccl.so.2; do
  found=
  for d in "${candidates[@]}"; do
    if [ -e "$d/$want" ]; then found=$d; break; fi
  done
  if [ -n "$found" ]; then
    case ":$libpath:" in *":$found:"*) ;; *) libpath=$libpath:$found ;; esac
  else
    missing+=("$want")
  fi
done

# Seconds a step may take: until `percent` of the budget has passed (at least 10).
until_pct() {
  local deadline=$((budget * $1 / 100))
  echo $((deadline - SECONDS > 10 ? deadline - SECONDS : 10))
}

gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null |
  head -1)
{
  echo "# troupe GPU check"
  echo
  echo "- GPU: ${gpu:-unknown (no nvidia-smi)}"
  echo "- bundle: commit $(cat "$root/COMMIT" 2>/dev/null || echo unknown), $(date -u +%F)"
  echo "- libraries: ${libpath//$root/<bundle>}"
  [ -f "$root/models/STRIPPED" ] &&
    echo "- random weights (stripped from the bundle, TROUPE_RANDOM_WEIGHTS=1):" \
      "$(paste -sd ' ' "$root/models/STRIPPED")"
  [ ${#missing[@]} -eq 0 ] ||
    echo "- MISSING: ${missing[*]} (libcuda comes with the driver; the others with the" \
      "CUDA 13 toolkit or the nvidia-*-cu13 wheels)"
  echo
  echo "## Tests"
  echo
  echo "| binary | result | summary |"
  echo "|---|---|---|"
} > "$report"

# Programs start through the bundled loader and C library (built on Debian 12), so an older
# system glibc does not matter. Tests and benchmarks take the bundled models; the stripped
# ones load with random weights of their recorded statistics.
export TROUPE_GPU_MODELS_DIR=$root/models TROUPE_TEST_MODELS=$root/models TROUPE_RANDOM_WEIGHTS=1
failed=0
for t in "$root"/bin/test_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  [[ $t == *.args ]] && continue
  name=$(basename "$t")
  args=() # bin/<test>.args: the cases of that binary to run here
  [ -f "$t.args" ] && read -r -a args < "$t.args"
  timeout "$(until_pct 30)" "$root/lib/ld-linux-x86-64.so.2" --library-path "$libpath" "$t" \
    "${args[@]}" \
    > "$out/$name.log" 2>&1
  rc=$?
  case $rc in
    0) result=passed ;;
    77) result=skipped ;;
    124) result="TIMEOUT"; failed=1 ;;
    *) result="FAILED ($rc)"; failed=1 ;;
  esac
  summary=$(grep -hE '^\[doctest\] test cases:|GPU test cases skipped:' "$out/$name.log" |
    tr '|' '/' | paste -sd ' ' -)
  echo "| $name | $result | ${summary:-see $name.log} |" >> "$report"
done

{
  echo
  echo "## Benchmarks"
  echo
  echo "| bench | case | result |"
  echo "|---|---|---|"
} >> "$report"
# Only when the bundle was made without them: exported here when torch is installed.
for m in resnet18 resnet50; do
  [ -f "$root/models/$m.onnx" ] && continue
  timeout "$(until_pct 40)" python3 "$root/tools/export_models.py" --out "$root/models" \
    --models "$m" > "$out/export-$m.log" 2>&1 ||
    echo "gpu-check: could not export $m (see export-$m.log)" >&2
done
torch_state=$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "no-cuda")' \
  2>/dev/null || echo missing)

# bench NAME LOG PERCENT [ARGS...]: runs bin/NAME until PERCENT of the budget, its output in
# $out/LOG; its table rows go into the report.
bench() {
  local name=$1 log=$2 pct=$3
  shift 3
  [ -x "$root/bin/$name" ] || return 0
  timeout "$(until_pct "$pct")" "$root/lib/ld-linux-x86-64.so.2" --library-path "$libpath" \
    "$root/bin/$name" "$@" > "$out/$log" 2>&1
  local rc=$?
  grep '^|' "$out/$log" >> "$report"
  case $rc in
    0) ;;
    77) echo "| $name | skipped | $(head -1 "$out/$log" | tr '|' '/') |" >> "$report" ;;
    124) echo "| $name | stopped at its deadline (rows above are complete) | see $log |" \
      >> "$report" ;;
    *) echo "| $name | FAILED (exit $rc) | see $log |" >> "$report"; failed=1 ;;
  esac
}
# torch_rows LOG PERCENT ARGS...: tools/gpu_torch_models.py's rows, when PyTorch sees the GPU.
torch_rows() {
  local log=$1 pct=$2
  shift 2
  [ "$torch_state" = cuda ] || return 0
  timeout "$(until_pct "$pct")" python3 "$root/tools/gpu_torch_models.py" "$@" > "$out/$log" 2>&1
  local rc=$?
  grep '^|' "$out/$log" >> "$report"
  case $rc in
    0) ;;
    124) echo "| torch | stopped at its deadline (rows above are complete) | see $log |" \
      >> "$report" ;;
    *) echo "| torch | FAILED (exit $rc) | see $log |" >> "$report" ;;
  esac
}

# First the targets' cases: ResNet-50 fp16 at batch 256, the encoder at fp16, troupe and
# PyTorch, raw and served.
bench bench_gpu_models models-targets.log 42 --models resnet50 bert_encoder --precision fp16 \
  --batch 32 256
torch_rows torch-targets.log 50 --models resnet50 bert_encoder \
  "bert_encoder (nn.TransformerEncoder)" --precision fp16 --batch 32 256
bench bench_gpu_serving serving-targets.log 66 --models resnet50,bert_encoder --precision fp16 \
  --batch 256 --no-pipelines
# Then everything: copies and the allocator, every model, precision and batch, served models
# and pipelines, and PyTorch's figures for the same.
bench bench_gpu_copy bench_gpu_copy.log 69
bench bench_gpu_models bench_gpu_models.log 83
bench bench_gpu_serving bench_gpu_serving.log 91
case $torch_state in
  cuda)
    timeout "$(until_pct 93)" python3 "$root/tools/gpu_torch_bench.py" > "$out/torch.log" 2>&1
    grep '^|' "$out/torch.log" >> "$report"
    # The same models, precisions and batches as bench_gpu_models, in PyTorch eager.
    torch_rows torch_models.log 100 ;;
  no-cuda) echo "| torch | PyTorch comparison | skipped: torch imports but sees no GPU |" \
    >> "$report" ;;
  *) echo "| torch | PyTorch comparison | skipped: \`import torch\` fails (PyTorch is missing) |" \
    >> "$report" ;;
esac

# The issue's targets: troupe/torch per case and served/raw, from the logs above.
# Each side's logs together (a case measured in both passes counts once: gpu_ratios.py keeps
# the faster troupe and torch row, and the later served row).
cat "$out"/models-targets.log "$out"/bench_gpu_models.log > "$out/troupe-all.log" 2>/dev/null
cat "$out"/torch-targets.log "$out"/torch_models.log > "$out/torch-all.log" 2>/dev/null
cat "$out"/serving-targets.log "$out"/bench_gpu_serving.log > "$out/serving-all.log" 2>/dev/null
if [ -s "$out/troupe-all.log" ]; then
  torch_arg=()
  [ -s "$out/torch-all.log" ] && torch_arg=(--torch "$out/torch-all.log")
  serving_arg=()
  [ -s "$out/serving-all.log" ] && serving_arg=(--serving "$out/serving-all.log")
  python3 "$root/tools/gpu_ratios.py" --troupe "$out/troupe-all.log" "${torch_arg[@]}" \
    "${serving_arg[@]}" >> "$report" 2> "$out/gpu_ratios.log" ||
    echo "gpu-check: gpu_ratios.py failed (see gpu_ratios.log)" >&2
fi

cat "$report"
echo
echo "gpu-check: logs in $out ($SECONDS s)"
exit $failed
