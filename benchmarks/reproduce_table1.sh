#!/usr/bin/env bash
# Rebuild the MaskMTL Table 1 comparison on UTKFace with maskmtl's own commands.
#
#   bash benchmarks/reproduce_table1.sh [WORK_DIR]
#
# Environment: DATA (utkface64 folder), PARTS (parts.csv), EPOCHS (per paper-protocol row,
# default 15), ROWS (space-separated subset of the paper-protocol rows below), RANDOM_ROWS (the
# random-split candidates for the shipped model), SEED (masks and splits, default 0), SEEDS
# (training seeds, default "0"; a row trained with seed S > 0 is named <row>-sS, and
# seeds.md gives each row's mean and spread over its seeds).
# Each finished step is skipped on a rerun, so the script resumes after an interruption.
# Results: WORK_DIR/runs/<row>/eval/metrics.json, WORK_DIR/table1.md (paper protocol) and
# WORK_DIR/random.md (random split; candidates also evaluated on val, for model selection, and
# on test with test-time flip), all written by `maskmtl eval --compare`.
set -euo pipefail
WORK=${1:-table1}
DATA=${DATA:-../shared/data/utkface64}
PARTS=${PARTS:-../shared/data/utkface_meta/parts.csv}
EPOCHS=${EPOCHS:-15}
SEED=${SEED:-0}
SEEDS=${SEEDS:-0}
ROWS=${ROWS-"hier-nl-deep-ldl hier-nl hier hard hier-nl-unmasked age-only gender-only race-only soft notebook"}
RANDOM_ROWS=${RANDOM_ROWS-"random-ship random-deep-ldl random-compact48 random-wide64"}
MASKMTL=${MASKMTL:-maskmtl}
HERE=$(cd "$(dirname "$0")" && pwd)
export TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$WORK"
cd "$WORK"

# 1. masks (random mode: mixed templates, colours, textures) and the paper's split protocol
[ -f masked/masks.csv ] || $MASKMTL mask "$DATA" masked --aligned --seed "$SEED" --json > mask.json
[ -f manifest_masked.csv ] || $MASKMTL split masked -o manifest_masked.csv --strategy parts \
    --parts "$PARTS" --seed "$SEED" --json > split_masked.json
[ -f manifest_unmasked.csv ] || $MASKMTL split "$DATA" -o manifest_unmasked.csv --strategy parts \
    --parts "$PARTS" --seed "$SEED" --json > split_unmasked.json
[ -f manifest_masked_random.csv ] || $MASKMTL split masked -o manifest_masked_random.csv \
    --strategy random --seed "$SEED" --json > split_masked_random.json

row_args() {  # row_args ROW TRAINING_SEED
  local SEED=$2
  # Issue 7's rows: every option that train's defaults have changed since is pinned.
  local OLD="--preset compact --age-loss l1 --race-balance none"
  local COMMON="$OLD --color rgb --image-size 48 --batch-size 64 --epochs $EPOCHS --lr-schedule cosine --augment --seed $SEED"
  case "$1" in
    hier-nl)          echo "manifest_masked.csv --arch hierarchical --nonlocal $COMMON" ;;
    hier)             echo "manifest_masked.csv --arch hierarchical --no-nonlocal $COMMON" ;;
    hard)             echo "manifest_masked.csv --arch hard --no-nonlocal $COMMON" ;;
    soft)             echo "manifest_masked.csv --arch soft --no-nonlocal $COMMON" ;;
    hier-nl-unmasked) echo "manifest_unmasked.csv --arch hierarchical --nonlocal $COMMON" ;;
    age-only)         echo "manifest_masked.csv --arch hierarchical --no-nonlocal --tasks age $COMMON" ;;
    gender-only)      echo "manifest_masked.csv --arch hierarchical --no-nonlocal --tasks gender $COMMON" ;;
    race-only)        echo "manifest_masked.csv --arch hierarchical --no-nonlocal --tasks race $COMMON" ;;
    # issue 12: the shipped recipe (train's defaults since then) on the paper's protocol
    hier-nl-deep-ldl) echo "manifest_masked.csv --arch hierarchical --nonlocal --preset deep --age-loss ldl --race-balance none --color rgb --image-size 48 --batch-size 64 --epochs 40 --lr-schedule cosine --augment --seed $SEED" ;;
    notebook)         echo "manifest_masked.csv --arch hierarchical --no-nonlocal --preset notebook --color gray --image-size 48 --batch-size 32 --epochs $EPOCHS --lr-schedule constant --no-augment --age-loss l1 --race-balance none --seed $SEED" ;;
    # random split (80/10/10 of all photos): candidates for the shipped model
    random-compact48) echo "manifest_masked_random.csv --arch hierarchical --nonlocal --preset compact --age-loss l1 --race-balance none --color rgb --image-size 48 --batch-size 64 --epochs 18 --lr-schedule cosine --augment --seed $SEED" ;;
    random-ship)      echo "manifest_masked_random.csv --arch hierarchical --nonlocal --preset deep --age-loss ldl --race-balance logit-adjust --race-tau 0.25 --color rgb --image-size 48 --batch-size 64 --epochs 40 --lr-schedule cosine --augment --seed $SEED" ;;
    random-deep-ldl)  echo "manifest_masked_random.csv --arch hierarchical --nonlocal --preset deep --age-loss ldl --race-balance none --color rgb --image-size 48 --batch-size 64 --epochs 40 --lr-schedule cosine --augment --seed $SEED" ;;
    random-wide64)    echo "manifest_masked_random.csv --arch hierarchical --nonlocal --preset wide --age-loss l1 --race-balance none --color rgb --image-size 64 --batch-size 64 --epochs 16 --lr-schedule cosine --augment --seed $SEED" ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}

# 2. one training run and one evaluation per row and training seed
run_name() { if [ "$2" = 0 ]; then echo "$1"; else echo "$1-s$2"; fi; }
RUNS=()
for row in $ROWS $RANDOM_ROWS; do
  for seed in $SEEDS; do
    run=$(run_name "$row" "$seed")
    RUNS+=("runs/$run")
    if [ ! -f "runs/$run/summary.json" ] || ! grep -q '"status": "finished"' "runs/$run/summary.json"; then
      if [ -d "runs/$run" ]; then
        $MASKMTL train --resume "runs/$run" 2> "train-$run.log"
      else
        # shellcheck disable=SC2046
        $MASKMTL train $(row_args "$row" "$seed") --project runs --name "$run" 2> "train-$run.log"
      fi
    fi
    [ -f "runs/$run/eval/metrics.json" ] || $MASKMTL eval "runs/$run" --report --split test \
        > "eval-$run.txt" 2> "eval-$run.log"
  done
done
for row in $RANDOM_ROWS; do
  [ -f "runs/$row/eval-val/metrics.json" ] || $MASKMTL eval "runs/$row" --split val \
      -o "runs/$row/eval-val" > "eval-$row-val.txt" 2> "eval-$row-val.log"
  [ -f "runs/$row/eval-flip/metrics.json" ] || $MASKMTL eval "runs/$row" --split test --flip \
      -o "runs/$row/eval-flip" > "eval-$row-flip.txt" 2> "eval-$row-flip.log"
done

# 3. the tables
if [ "$SEEDS" != 0 ]; then
  python3 "$HERE/seed_summary.py" "${RUNS[@]}" > seeds.md
  cat seeds.md
fi
if [ -n "$ROWS" ]; then
  # shellcheck disable=SC2046
  $MASKMTL eval --compare $(for row in $ROWS; do echo "runs/$row"; done) -o compare > table1.md
  cat table1.md
fi
if [ -n "$RANDOM_ROWS" ]; then
  # shellcheck disable=SC2046
  $MASKMTL eval --compare $(for row in $RANDOM_ROWS; do echo "runs/$row"; done) -o compare-random \
      > random.md
  cat random.md
fi
