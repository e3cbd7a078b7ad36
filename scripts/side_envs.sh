# Sourced by scripts/test.sh and scripts/bench.sh: the side environments of ONNX Runtime
# (.venv-ort) and PyTorch (.venv-torch), made or reused, and IGC_ORT_PYTHON and
# IGC_TORCH_PYTHON pointing at their interpreters (IGC_ORT_VENV, IGC_TORCH_VENV: other
# locations).
ort_venv=${IGC_ORT_VENV:-.venv-ort}
torch_venv=${IGC_TORCH_VENV:-.venv-torch}
scripts/side_env.sh "$ort_venv" requirements-ort.txt onnxruntime
scripts/side_env.sh "$torch_venv" requirements-torch.txt torch
case $ort_venv in /*) ;; *) ort_venv=$PWD/$ort_venv ;; esac
case $torch_venv in /*) ;; *) torch_venv=$PWD/$torch_venv ;; esac
export IGC_ORT_PYTHON=${IGC_ORT_PYTHON:-$ort_venv/bin/python}
export IGC_TORCH_PYTHON=${IGC_TORCH_PYTHON:-$torch_venv/bin/python}
