#!/usr/bin/env bash
# The GPU check, in one command, on a machine with an NVIDIA GPU, nvcc, CMake and
# a python3 with PyTorch (CUDA); no MXNet and no network needed:
#   1. builds the kernels-only CUDA library for this GPU's architecture;
#   2. checks Reorder, InterleavedGroupConv and GroupConvolution (every pass,
#      float32/float64/float16) against PyTorch with TF32 off;
#   3. times them against PyTorch/cuDNN and a device-to-device copy at the IGC
#      stages of bench/gpu/shapes.py (CIFAR L24M2 stages 1-3 at batch 128,
#      ImageNet L4M32/L16M16/L100M2 stage 1 at batch 64).
# Results: gpu_check.json and gpu_check.md in $OUT if set, else bench/results/.
# A few minutes on one H100/H200.
#
#   scripts/gpu_check.sh                 the check
#   IGC_GPU_CHECK_DRY_RUN=1 scripts/gpu_check.sh
#                                        the same script without a GPU: the CUDA
#                                        kernels emulated on the CPU, batch 1, no timing
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-bench/results}
BUILD=build/gpu-check
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

if [ -n "${IGC_GPU_CHECK_DRY_RUN:-}" ]; then
  echo "[gpu_check] dry run: emulated CUDA kernels on the CPU"
  cmake -S . -B "$BUILD-dry" "${generator[@]}" -DIGC_KERNELS_ONLY=ON -DIGC_USE_CUDA=OFF \
      -DIGC_CUDA_EMULATION=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD-dry" --parallel --target igc_kernels_emulated
  exec "$PY" bench/gpu/check.py --library "$BUILD-dry/libigc_kernels_emulated.so" \
      --device cpu --batch 1 --no-timing --out "$OUT_DIR"
fi

command -v nvidia-smi >/dev/null || { echo "[gpu_check] no nvidia-smi: is this a GPU machine?"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '. ')
echo "[gpu_check] building libigc_kernels.so for sm_$arch"
start=$(date +%s)
cmake -S . -B "$BUILD" "${generator[@]}" -DIGC_KERNELS_ONLY=ON -DIGC_USE_CUDA=ON \
    -DIGC_CUDA_EMULATION=OFF -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" --parallel --target igc_kernels
echo "[gpu_check] built in $(( $(date +%s) - start )) s"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'PyTorch sees no GPU'; print('[gpu_check] torch', torch.__version__, torch.cuda.get_device_name())"
PYTHONUNBUFFERED=1 "$PY" bench/gpu/check.py --library "$BUILD/libigc_kernels.so" --out "$OUT_DIR"
echo "[gpu_check] done in $(( $(date +%s) - start )) s: $OUT_DIR/gpu_check.json, $OUT_DIR/gpu_check.md"
