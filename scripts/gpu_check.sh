#!/usr/bin/env bash
# The GPU check, in one command, on a machine with an NVIDIA GPU and its driver,
# Python 3 and pip; no MXNet, and no network when given a folder of wheels:
#   1. finds nvcc (CUDACXX, PATH, /usr/local/cuda); without one, installs NVIDIA's
#      CUDA 13.0 compiler wheels into build/gpu-check/cuda and builds with those
#      (they need a driver for CUDA 13, 580 or newer). CMake, Ninja and PyTorch
#      are installed under build/gpu-check the same way when missing;
#   2. builds the kernels-only CUDA library for this GPU's architecture;
#   3. runs every kernel on small shapes under compute-sanitizer memcheck,
#      racecheck and synccheck (bench/gpu/sanitize.py), when compute-sanitizer is
#      found or its wheel installs, and says so when it is not;
#   4. checks Reorder, InterleavedGroupConv and GroupConvolution (every pass,
#      float32/float64/float16) against PyTorch with TF32 off;
#   5. times them against PyTorch/cuDNN and a device-to-device copy at the IGC
#      stages of bench/gpu/shapes.py (CIFAR L24M2 stages 1-3 at batch 128,
#      ImageNet L4M32/L16M16/L100M2 stage 1 at batch 64).
# Results: gpu_check.json, gpu_check.md and the sanitizer's reports in $OUT if
# set, else bench/results/. A few minutes on one H100/H200.
#
#   scripts/gpu_check.sh                    the check
#   scripts/gpu_check.sh --wheels DIR       install what is missing from the wheels
#                                           in DIR only (a machine without network)
#   scripts/gpu_check.sh --cuda-from-wheels build with the CUDA wheels even where an
#                                           nvcc is found
#   scripts/gpu_check.sh --build-only       steps 1 and 2 only; no GPU needed (the
#                                           architecture: the GPU's, else
#                                           $IGC_CUDA_ARCH, else 90)
#   scripts/gpu_check.sh --dry-run          (or IGC_GPU_CHECK_DRY_RUN=1) without a
#                                           GPU: the CUDA kernels emulated on the CPU,
#                                           sanitize.py and the check at batch 1, no
#                                           compute-sanitizer, no timing
# PYTHON picks the interpreter (default python3), IGC_GPU_CHECK_BUILD the folder of
# the builds and installed wheels (default build/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-bench/results}
BUILD=${IGC_GPU_CHECK_BUILD:-build/gpu-check}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
# pip --target folders (pip installs into an existing folder only what it does not
# hold yet, so each install gets its own): cmake and ninja, PyTorch, the CUDA
# compiler wheels, compute-sanitizer.
TOOLS=$BUILD/tools
TORCH=$BUILD/torch
TOOLKIT=$BUILD/cuda
SANITIZER=$BUILD/sanitizer
WHEELS=${IGC_WHEELS:-}
DRY_RUN=${IGC_GPU_CHECK_DRY_RUN:-}
BUILD_ONLY=
FROM_WHEELS=
# NVIDIA's CUDA 13.0 compiler as wheels: nvcc and ptxas, cicc, the headers, cccl
# and the runtime CMake links.
CUDA_WHEELS=("nvidia-cuda-nvcc>=13.0,<13.1" "nvidia-cuda-crt>=13.0,<13.1"
             "nvidia-nvvm>=13.0,<13.1" "nvidia-cuda-cccl>=13.0,<13.1"
             "nvidia-cuda-runtime>=13.0,<13.1")
SANITIZER_WHEEL="nvidia-cuda-sanitizer-api>=13.0,<13.1"

say() { echo "[gpu_check] $*"; }
die() { echo "[gpu_check] $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --wheels)
      [ $# -ge 2 ] || die "--wheels needs a folder"
      WHEELS=$2; shift 2 ;;
    --cuda-from-wheels) FROM_WHEELS=1; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1': expected --wheels DIR, --cuda-from-wheels, --build-only, --dry-run or --help" ;;
  esac
done
if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || die "--wheels $WHEELS: not a folder"
  WHEELS=$(cd "$WHEELS" && pwd)
fi
mkdir -p "$OUT_DIR"
"$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip: install pip (python3 -m ensurepip, or the distribution's python3-pip)"

# pip_into DIR REQUIREMENT...: installs into DIR (pip --target, outside any
# environment), from the package index or, with --wheels, from that folder only.
pip_into() {
  local target=$1; shift
  local source=()
  [ -n "$WHEELS" ] && source=(--no-index --find-links "$WHEELS")
  "$PY" -m pip install --quiet --disable-pip-version-check --target "$target" "${source[@]}" "$@"
}

export PATH="$TOOLS/bin:$PATH"
export PYTHONPATH="$TOOLS:$TORCH${PYTHONPATH:+:$PYTHONPATH}"

ensure_build_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=("cmake>=3.18")
  command -v ninja >/dev/null || missing+=(ninja)
  if [ ${#missing[@]} -gt 0 ]; then
    say "no ${missing[*]}: installing the wheels into $TOOLS"
    pip_into "$TOOLS" "${missing[@]}" || die "${missing[*]} could not be installed${WHEELS:+ from $WHEELS}"
  fi
  generator=()
  if command -v ninja >/dev/null; then generator=(-G Ninja); fi
}

ensure_torch() {
  if ! "$PY" -c "import torch" 2>/dev/null; then
    say "no PyTorch for $PY: installing the torch wheel into $TORCH"
    pip_into "$TORCH" torch || die "torch could not be installed${WHEELS:+ from $WHEELS}"
  fi
}

find_nvcc() {
  local candidate
  for candidate in "${CUDACXX:-}" "$(command -v nvcc || true)" /usr/local/cuda/bin/nvcc; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# nvcc of the CUDA 13.0 wheels, installed if need be. The wheels lay the toolkit out
# under nvidia/cu13 without two links that nvcc and CMake's FindCUDAToolkit look
# for: lib64 (nvcc links from lib64) and the unversioned libcudart.so.
nvcc_from_wheels() {
  local root=$TOOLKIT/nvidia/cu13
  if [ ! -x "$root/bin/nvcc" ]; then
    say "installing NVIDIA's CUDA 13.0 compiler wheels into $TOOLKIT${WHEELS:+ from $WHEELS}" >&2
    pip_into "$TOOLKIT" "${CUDA_WHEELS[@]}" >&2 ||
      die "the CUDA wheels could not be installed${WHEELS:+ from $WHEELS} (${CUDA_WHEELS[*]})"
  fi
  ln -sfn lib "$root/lib64"
  ln -sfn libcudart.so.13 "$root/lib/libcudart.so"
  echo "$root/bin/nvcc"
}

release_of() { "$1" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1.\2/p'; }

find_sanitizer() {
  local candidate
  for candidate in "$(command -v compute-sanitizer || true)" "$(dirname "$nvcc")/compute-sanitizer" \
                   /usr/local/cuda/bin/compute-sanitizer "$SANITIZER/nvidia/cu13/bin/compute-sanitizer"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if [ -n "$DRY_RUN" ]; then
  say "dry run: emulated CUDA kernels on the CPU"
  ensure_build_tools
  ensure_torch
  cmake -S . -B "$BUILD/emulated" "${generator[@]}" -DIGC_KERNELS_ONLY=ON -DIGC_USE_CUDA=OFF \
      -DIGC_CUDA_EMULATION=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD/emulated" --parallel --target igc_kernels_emulated
  say "compute-sanitizer: not run in a dry run (no GPU); the emulated kernels check every access and report races themselves"
  "$PY" bench/gpu/sanitize.py --library "$BUILD/emulated/libigc_kernels_emulated.so" --emulated
  exec "$PY" bench/gpu/check.py --library "$BUILD/emulated/libigc_kernels_emulated.so" \
      --device cpu --batch 1 --no-timing --out "$OUT_DIR"
fi

if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '. ')
  driver_cuda=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
elif [ -n "$BUILD_ONLY" ]; then
  arch=${IGC_CUDA_ARCH:-90}
  driver_cuda=
  say "no GPU: building for sm_$arch"
else
  die "no working nvidia-smi: is this a GPU machine with its driver? (--build-only and --dry-run need no GPU)"
fi

ensure_build_tools
if [ -z "$FROM_WHEELS" ] && nvcc=$(find_nvcc); then
  say "nvcc: $nvcc"
else
  [ -n "$FROM_WHEELS" ] || say "no nvcc (CUDACXX, PATH, /usr/local/cuda): using NVIDIA's CUDA wheels"
  nvcc=$(nvcc_from_wheels)
fi
export CUDACXX=$nvcc
release=$(release_of "$nvcc")
say "CUDA $release compiler: $nvcc"
if [ -n "$driver_cuda" ] && [ "${release%%.*}" -gt "${driver_cuda%%.*}" ]; then
  die "the driver runs CUDA up to $driver_cuda, and nvcc $release builds code it cannot load: install a driver for CUDA ${release%%.*} (580 or newer for CUDA 13), or point CUDACXX at a CUDA ${driver_cuda%%.*} toolkit's nvcc"
fi

say "building libigc_kernels.so for sm_$arch"
start=$(date +%s)
cmake -S . -B "$BUILD/lib" "${generator[@]}" -DIGC_KERNELS_ONLY=ON -DIGC_USE_CUDA=ON \
    -DIGC_CUDA_EMULATION=OFF -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD/lib" --parallel --target igc_kernels
library=$BUILD/lib/libigc_kernels.so
say "built $library in $(( $(date +%s) - start )) s"
if [ -n "$BUILD_ONLY" ]; then
  exit 0
fi

if ! sanitizer=$(find_sanitizer); then
  say "no compute-sanitizer: installing its wheel into $SANITIZER"
  pip_into "$SANITIZER" "$SANITIZER_WHEEL" >/dev/null 2>&1 || true
  sanitizer=$(find_sanitizer) || sanitizer=
fi
if [ -z "$sanitizer" ]; then
  say "compute-sanitizer: not available (neither found nor installable${WHEELS:+ from $WHEELS}); memcheck, racecheck and synccheck not run"
else
  for tool in memcheck racecheck synccheck; do
    say "compute-sanitizer --tool $tool"
    if ! "$sanitizer" --tool "$tool" --error-exitcode 1 "$PY" bench/gpu/sanitize.py \
        --library "$library" > "$OUT_DIR/sanitizer_$tool.txt" 2>&1; then
      tail -n 40 "$OUT_DIR/sanitizer_$tool.txt" >&2
      die "compute-sanitizer $tool found errors: $OUT_DIR/sanitizer_$tool.txt"
    fi
    tail -n 1 "$OUT_DIR/sanitizer_$tool.txt"
  done
fi

ensure_torch
"$PY" -c "import torch; assert torch.cuda.is_available(), 'PyTorch sees no GPU'; print('[gpu_check] torch', torch.__version__, torch.cuda.get_device_name())"
PYTHONUNBUFFERED=1 "$PY" bench/gpu/check.py --library "$library" --out "$OUT_DIR"
say "done in $(( $(date +%s) - start )) s: $OUT_DIR/gpu_check.json, $OUT_DIR/gpu_check.md"
