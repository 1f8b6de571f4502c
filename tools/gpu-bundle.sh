#!/usr/bin/env bash
# gpu-bundle: builds the CUDA test and benchmark programs here (sm_90, CUDA required) and packs
# them with the non-NVIDIA shared libraries they load, the C library to start them with, the
# check scripts and a few exported models into one archive (at most 40 MB) for tools/gpu-check.sh
# on a GPU machine that has only the NVIDIA stack.
#   tools/gpu-bundle.sh [archive]     (default build-gpu/gpu-bundle.tar.gz)
# TROUPE_GPU_MODELS: exported models to include (default: the four reference models and
# ResNet-50), read from TROUPE_TEST_MODELS (default: the folder build/ was configured with, else
# build/models); a missing one is exported there first when Debian's python3 has torch.
# TROUPE_GPU_STRIPPED: those among them that travel without their weights (tools/strip_weights.py;
# gpu-check.sh runs them with TROUPE_RANDOM_WEIGHTS=1), so that they fit the size limit.
set -euo pipefail
cd "$(dirname "$0")/.."
build="build-gpu"
archive=${1:-$build/gpu-bundle.tar.gz}
# The models the main build was configured with, else build/models.
configured=$(sed -n 's/^TROUPE_TEST_MODELS:PATH=//p' build/CMakeCache.txt 2>/dev/null || true)
models_dir=${TROUPE_TEST_MODELS:-${configured:-$PWD/build/models}}
models=${TROUPE_GPU_MODELS:-seed_cnn bert_encoder resnet18 mobilenet_v2 resnet50}
stripped=" ${TROUPE_GPU_STRIPPED:-resnet18 mobilenet_v2 resnet50} "
python=${TROUPE_PYTHON:-/usr/bin/python3} # Debian's python3 carries torch and onnx
limit_mb=40

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTROUPE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTROUPE_TEST_MODELS="$models_dir" "${launcher[@]}" >/dev/null
# Every CUDA-only test binary (test_cuda*) and GPU benchmark (bench_gpu_*) the build defines.
mapfile -t targets < <(ninja -C "$build" -t targets all |
  sed -n 's/^\(test_cuda[a-z_]*\|bench_gpu_[a-z_]*\): .*/\1/p' | sort -u)
[ ${#targets[@]} -gt 0 ] || { echo "gpu-bundle: no GPU targets in $build" >&2; exit 1; }
# The actor tests too, for their GPU serving cases only (bin/test_actors.args): on a machine
# with a GPU, KIND_AUTO would move the CPU cases' models onto it.
targets+=(test_actors)
cmake --build "$build" -j2 --target troupe_cuda "${targets[@]}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/troupe-gpu
mkdir -p "$root/bin" "$root/lib" "$root/models" "$root/tools"
for t in "${targets[@]}"; do
  cp "$(find "$build" -type f -name "$t" -perm -u+x | head -1)" "$root/bin/"
done
# Shared libraries: everything the programs load except the NVIDIA stack, which the GPU
# machine provides (driver, toolkit, cuDNN/NCCL). The C library and its loader come along, so
# the programs start through it even where the system's glibc is older than Debian 12's.
nvidia='^lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|nccl|nvrtc|nvJitLink)\.so'
for bin in "$root"/bin/*; do
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}'
done | sort -u | while read -r lib; do
  name=$(basename "$lib")
  if [[ ! $name =~ $nvidia ]]; then
    cp -L "$lib" "$root/lib/$name"
  fi
done
echo '-tc=*KIND_GPU*' > "$root/bin/test_actors.args"
# The CUDA backend plugin: programs that only dlopen it (served runs) need it beside
# libtroupe_kernels.so even when no bundled program links it.
cp -L "$build/lib/libtroupe_cuda.so" "$root/lib/"
for m in $models; do
  if [ ! -f "$models_dir/$m.onnx" ]; then
    "$python" tools/export_models.py --out "$models_dir" --models "$m" --batch 2 >&2 ||
      echo "gpu-bundle: could not export $m" >&2
  fi
  if [ ! -f "$models_dir/$m.onnx" ]; then
    echo "gpu-bundle: no $models_dir/$m.onnx (tools/export_models.py makes it); skipped" >&2
  elif [[ $stripped == *" $m "* ]]; then
    # Its sample outputs belong to the real weights: only the stripped graph travels.
    "$python" tools/strip_weights.py "$models_dir/$m.onnx" "$root/models/$m.onnx"
    echo "$m" >> "$root/models/STRIPPED"
  else
    cp "$models_dir/$m".* "$root/models/"
  fi
done
cp tools/gpu-check.sh tools/gpu_torch_bench.py tools/gpu_torch_models.py tools/gpu_ratios.py \
  tools/export_models.py tools/strip_weights.py \
  "$root/tools/"
git rev-parse --short HEAD > "$root/COMMIT" 2>/dev/null || echo unknown > "$root/COMMIT"

mkdir -p "$(dirname "$archive")"
tar -C "$stage" -czf "$archive" troupe-gpu
size=$(stat -c %s "$archive")
echo "gpu-bundle: $archive, $((size / 1024 / 1024)) MB: $(ls "$root/bin" | tr '\n' ' ')"
if [ "$size" -gt $((limit_mb * 1024 * 1024)) ]; then
  echo "gpu-bundle: over the $limit_mb MB limit; drop models (TROUPE_GPU_MODELS)" >&2
  exit 1
fi
