#!/usr/bin/env bash
# gpu-check: on a GPU machine, runs a bundle made by tools/gpu-bundle.sh: finds the NVIDIA
# libraries (system toolkit or nvidia-*-cu13 pip wheels), runs every GPU test binary, then every
# GPU benchmark and, when PyTorch imports, its figures for the same cases, then the targets
# table (tools/gpu_ratios.py: troupe/torch, served/raw); prints a report with the GPU's name
# and writes it (and every log) under $OUT when set. Stays under 8 minutes.
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

left() { echo $((budget - SECONDS > 10 ? budget - SECONDS : 10)); }

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
  timeout "$(left)" "$root/lib/ld-linux-x86-64.so.2" --library-path "$libpath" "$t" "${args[@]}" \
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
  timeout "$(left)" python3 "$root/tools/export_models.py" --out "$root/models" --models "$m" \
    > "$out/export-$m.log" 2>&1 || echo "gpu-check: could not export $m (see export-$m.log)" >&2
done
for b in "$root"/bin/bench_gpu_*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  timeout "$(left)" "$root/lib/ld-linux-x86-64.so.2" --library-path "$libpath" "$b" \
    > "$out/$name.log" 2>&1
  rc=$?
  grep '^|' "$out/$name.log" >> "$report"
  case $rc in
    0) ;;
    77) echo "| $name | skipped | $(head -1 "$out/$name.log" | tr '|' '/') |" >> "$report" ;;
    *) echo "| $name | FAILED (exit $rc) | see $name.log |" >> "$report"; failed=1 ;;
  esac
done

torch_state=$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "no-cuda")' \
  2>/dev/null || echo missing)
case $torch_state in
  cuda)
    timeout "$(left)" python3 "$root/tools/gpu_torch_bench.py" > "$out/torch.log" 2>&1
    grep '^|' "$out/torch.log"
    # The same models, precisions and batches as bench_gpu_models, in PyTorch eager.
    timeout "$(left)" python3 "$root/tools/gpu_torch_models.py" > "$out/torch_models.log" 2>&1
    grep '^|' "$out/torch_models.log" ;;
  no-cuda) echo "| torch | PyTorch comparison | skipped: torch imports but sees no GPU |" ;;
  *) echo "| torch | PyTorch comparison | skipped: \`import torch\` fails (PyTorch is missing) |" ;;
esac >> "$report"

# The issue's targets: troupe/torch per case and served/raw, from the logs above.
if [ -f "$out/bench_gpu_models.log" ]; then
  torch_arg=()
  [ -f "$out/torch_models.log" ] && torch_arg=(--torch "$out/torch_models.log")
  serving_arg=()
  [ -f "$out/bench_gpu_serving.log" ] && serving_arg=(--serving "$out/bench_gpu_serving.log")
  python3 "$root/tools/gpu_ratios.py" --troupe "$out/bench_gpu_models.log" "${torch_arg[@]}" \
    "${serving_arg[@]}" >> "$report" 2> "$out/gpu_ratios.log" ||
    echo "gpu-check: gpu_ratios.py failed (see gpu_ratios.log)" >&2
fi

cat "$report"
echo
echo "gpu-check: logs in $out ($SECONDS s)"
exit $failed
