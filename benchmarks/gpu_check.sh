#!/usr/bin/env bash
# GPU check, one prepared script for a machine with an NVIDIA GPU (no network needed); it stops
# itself before 8 minutes. It prints train and eval images/s of resnet18 and deit_small at 224 px
# (bf16, channels_last, eager and torch.compile), the time of one experiment=paper-shaped run on a
# synthetic CUB-sized dataset, and the extrapolated time of the whole study (benchmarks/gpu_check.py).
#
#   bash benchmarks/gpu_check.sh          # on the GPU machine, from a copy of the repository
#   bash benchmarks/gpu_check.sh --cpu    # tiny sizes on the CPU (tests/test_gpu_check.py)
#
# Python: $PYTHON if set, else .venv/bin/python. When that cannot import the project, .venv is
# created (seeing the system's site packages, so a preinstalled torch is reused) and the project
# installed into it with `pip install -e .` from local wheels: $WHEELS, a folder of wheels
# (pip --no-index --find-links), else pip's own configuration (e.g. a local index in pip.conf).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=offline FORGETTING_QUIET=1
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"  # deterministic cuBLAS
LIMIT_S="${GPU_CHECK_LIMIT_S:-470}"

python="${PYTHON:-.venv/bin/python}"
if ! "$python" -c "import forgetting, timm, torch" 2>/dev/null; then
  python=.venv/bin/python
  if [ ! -x "$python" ]; then
    echo "gpu_check: creating .venv"
    python3 -m venv --system-site-packages .venv
  fi
  pip_args=(-q)
  if [ -n "${WHEELS:-}" ]; then
    pip_args+=(--no-index --find-links "$WHEELS")
  fi
  echo "gpu_check: installing the project into .venv (pip install -e .)"
  "$python" -m pip install "${pip_args[@]}" -e .
fi

if [ "${1:-}" != "--cpu" ]; then
  if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; then
    echo "gpu_check: no NVIDIA GPU answers nvidia-smi; pass --cpu for the tiny CPU run" >&2
    exit 1
  fi
fi
left=$(( LIMIT_S - SECONDS ))
if [ "$left" -lt 60 ]; then
  echo "gpu_check: the installation left ${left} s of the ${LIMIT_S} s limit; run it again" >&2
  exit 1
fi
exec timeout "$left" "$python" benchmarks/gpu_check.py "$@"
