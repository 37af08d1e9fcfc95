#!/usr/bin/env bash
# The whole study in one command (DESIGN section 1):
#   stage 1  the training grid: experiment=paper, DATASETS x ARCHS x SEEDS, sampler=random, every
#            sample every epoch (OUTPUTS/<experiment>); and the random arms of the sampler
#            comparison at BUDGET (OUTPUTS/<experiment>-budget<BUDGET>)
#   stage 2  the spaced-repetition arms (SR_ARMS) at the same BUDGET, compute-matched to stage 1's
#            random arms, whose decay constants they read (reference=auto)
#   stage 3  the analysis of both folders (report.md, tables, figures)
# At budget 1 every sampler presents every sample in the same shuffled order, so the samplers can
# only differ at a budget below 1 (see conf/experiment/sampler_study.yaml for the choice of 0.5).
#
#   ./multirun.sh                       # the paper's study, here, one run after another
#   LAUNCHER=slurm ./multirun.sh        # as SLURM job arrays (pip install -e '.[slurm]')
#   ./multirun.sh --demo                # the digits grid (what `make demo` runs)
#
# Settings (environment):
#   LAUNCHER  basic (default: this process) | local (submitit, one process per run) | slurm
#   DATASETS  comma list, default cub200,octdl (--demo: digits)
#   ARCHS     comma list, default resnet18,deit_small (--demo: resnet18,deit_tiny,efficientnet_lite0)
#   SEEDS     comma list, default 0,1,2
#   SR_ARMS   stage 2 samplers, default spaced_repetition
#   SR_ARCHS  stage 2 archs, default ARCHS (--demo: resnet18)
#   BUDGET    fraction of the training set per fine-tuning epoch in the sampler comparison, 0.5
#   EXTRA     more Hydra overrides for the training stages, e.g.
#             EXTRA="train.epochs=10 hydra.launcher.partition=gpu hydra.launcher.gpus_per_node=1"
#   ANALYSIS_EXTRA  more overrides for the analysis, e.g. "analysis.top_q=0.05 logger=none"
#   OUTPUTS   the outputs folder, default outputs (runs in OUTPUTS/<experiment>, the report in
#             OUTPUTS/analysis/<experiment>/<time>)
#   PYTHON    the interpreter, default .venv/bin/python when it exists, else python3
#
# With LAUNCHER=slurm each stage submits one job array and waits for it: run this script on a
# login node under nohup or tmux (`nohup ./multirun.sh > study.log 2>&1 &`). Per-cluster launcher
# settings belong in conf/local/slurm.yaml (see conf/hydra/launcher/slurm.yaml). Re-running the
# script is safe: finished runs are skipped and interrupted or requeued ones resume from their
# checkpoints, so after a failure fix its cause and run the same command again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() { echo "multirun.sh: error: $*" >&2; exit 2; }

EXPERIMENT=paper DEMO=0
for arg in "$@"; do
  case "$arg" in
    --demo) DEMO=1 EXPERIMENT=demo ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (options: --demo, --help; settings go in the environment)" ;;
  esac
done
if [ "$DEMO" = 1 ]; then
  DATASETS=${DATASETS:-digits} ARCHS=${ARCHS:-resnet18,deit_tiny,efficientnet_lite0}
  SR_ARCHS=${SR_ARCHS:-resnet18}
fi
LAUNCHER=${LAUNCHER:-basic}
DATASETS=${DATASETS:-cub200,octdl}
ARCHS=${ARCHS:-resnet18,deit_small}
SEEDS=${SEEDS:-0,1,2}
SR_ARMS=${SR_ARMS:-spaced_repetition}
SR_ARCHS=${SR_ARCHS:-$ARCHS}
EXTRA=${EXTRA:-}
ANALYSIS_EXTRA=${ANALYSIS_EXTRA:-}
OUTPUTS=${OUTPUTS:-outputs}
BUDGET=${BUDGET:-0.5}
RUNS=$OUTPUTS/$EXPERIMENT
ARMS=$OUTPUTS/$EXPERIMENT-budget$BUDGET
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

case "$LAUNCHER" in
  basic) ;;
  local|slurm)
    "$PYTHON" -c "import hydra_plugins.hydra_submitit_launcher" 2>/dev/null ||
      die "LAUNCHER=$LAUNCHER needs hydra-submitit-launcher: $PYTHON -m pip install -e '.[slurm]'"
    if [ "$LAUNCHER" = slurm ] && ! command -v sbatch >/dev/null; then
      die "LAUNCHER=slurm but there is no sbatch on PATH: run this on a SLURM login node (or use LAUNCHER=local or basic)"
    fi ;;
  *) die "LAUNCHER=$LAUNCHER: choose basic, local or slurm" ;;
esac

stage() {  # stage <n> <what> <command...>: run it; stop the script with a clear message if it fails
  local n=$1 what=$2; shift 2
  echo "== stage $n: $what"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  if [ $rc != 0 ]; then
    echo "multirun.sh: stage $n ($what) failed with exit code $rc; nothing after it ran." >&2
    echo "Fix the cause above and run the same command again: finished runs are skipped and" >&2
    echo "interrupted ones resume from their checkpoints." >&2
    exit $rc
  fi
  echo "== stage $n done in $((SECONDS - start)) s"
}

train() {  # train <samplers> <archs> <folder> <budget>: one Hydra multirun over the grid
  # shellcheck disable=SC2086  # EXTRA is a list of overrides
  "$PYTHON" -m forgetting.train -m "experiment=$EXPERIMENT" "dataset=$DATASETS" "arch=$2" \
    "seed=$SEEDS" "sampler=$1" "sampler.budget=$4" "hydra/launcher=$LAUNCHER" \
    "hydra.sweep.dir=$3" $EXTRA
}

grid() {  # stage 1: the full-pass grid, then the budgeted random arms
  train random "$ARCHS" "$RUNS" 1.0 && train random "$SR_ARCHS" "$ARMS" "$BUDGET"
}

analyse() {  # analyse <folder>...: one report per folder
  local root
  for root in "$@"; do
    # shellcheck disable=SC2086
    "$PYTHON" -m forgetting.analyze "runs.root=$root" \
      "hydra.run.dir=$OUTPUTS/analysis/$(basename "$root")/\${now:%Y-%m-%d_%H-%M-%S}" \
      $ANALYSIS_EXTRA || return
  done
}

start=$SECONDS
stage 1 "train $DATASETS x $ARCHS x seeds $SEEDS, sampler random; random arms at budget $BUDGET ($LAUNCHER)" grid
stage 2 "train $SR_ARMS x $SR_ARCHS at budget $BUDGET against stage 1 ($LAUNCHER)" \
  train "$SR_ARMS" "$SR_ARCHS" "$ARMS" "$BUDGET"
stage 3 "analyse $RUNS and $ARMS" analyse "$RUNS" "$ARMS"
echo "multirun.sh: done in $((SECONDS - start)) s; runs in $RUNS and $ARMS, reports above"
