#!/usr/bin/env bash
# Installs every Debian package the build, tests and benchmarks need (idempotent).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev libomp-dev
  libcaf-dev libdnnl-dev libonnx-dev libprotobuf-dev protobuf-compiler
  libfmt-dev libspdlog-dev libcli11-dev libyaml-cpp-dev libsimdjson-dev
  doctest-dev libbenchmark-dev libboost-dev
  python3 python3-venv python3-numpy python3-torch python3-torchvision python3-onnx
  libopenblas0 wrk nginx-light curl httperf hey chromium valgrind
  libonnx-testdata dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "install-deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
