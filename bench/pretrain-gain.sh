#!/usr/bin/env bash
# The meta-label pre-training evidence: the same fine-tuning (supervised, LABELED ACDC patients, the table's setting)
# from a meta-label pre-trained encoder and from a random one (the table's supervised row, run here when missing).
# Usage: bench/pretrain-gain.sh [LABELED]   env: SIZE ITERS PRE_ITERS PRE_SCANS BS LBS THREADS OUT DATA SEMISEG TAG PRE_ARGS
# Pre-training uses `semiseg pretrain`'s defaults (RAdam, peak lr 2e-4, warm-up 1/8, cosine, wd 0: Peng et al.'s recipe)
# on the reference's batches over all training slices: PRE_SCANS scans (default 10) x one slice per partition (3) x 2
# views; PRE_ARGS adds options (e.g. "--lr 1e-3"); TAG names a variant's folders.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
labeled="${1:-3}"
size="${SIZE:-96}"; iters="${ITERS:-1000}"; pre="${PRE_ITERS:-1000}"; pre_scans="${PRE_SCANS:-10}"; tag="${TAG:-}"; bs="${BS:-8}"; lbs="${LBS:-4}"; threads="${THREADS:-$(nproc)}"
data="${DATA:-$root/../shared/data/acdc}"; out="${OUT:-$root/runs/table-${size}-${iters}}"
semiseg="${SEMISEG:-$root/semiseg}"
common=(--data "$data" --labeled "$labeled" --patch-size "$size" --batch-size "$bs" --labeled-bs "$lbs" --seed 1337 --threads "$threads" --workers 1 --log-every 50 -q)
common_pre=(--data "$data" --labeled "$labeled" --patch-size "$size" --param "scans_per_batch=$pre_scans" --seed 1337 --threads "$threads" --workers 1 --log-every 50 -q)
if [ ! -f "$out/pretrain$tag-$labeled/best.ckpt" ]; then
  # all training slices (labeled and unlabeled) in the contrastive batches; labels unused
  resume=(); [ -f "$out/pretrain$tag-$labeled/last.ckpt" ] && resume=(--resume)
  $semiseg pretrain "${common_pre[@]}" --output "$out/pretrain$tag-$labeled" --iterations "$pre" --save-every 100 ${PRE_ARGS:-} "${resume[@]}"
fi
for init in random pretrained; do
  run="$out/supervised-$labeled"; extra=()
  [ "$init" = pretrained ] && { run="$out/supervised-pretrained$tag-$labeled"; extra=(--init-encoder "$out/pretrain$tag-$labeled/best.ckpt"); }
  if [ ! -f "$run/eval-test/metrics.json" ]; then
    $semiseg train "${common[@]}" --method supervised --output "$run" --iterations "$iters" --val-every 100 --save-every 100 "${extra[@]}"
    $semiseg evaluate --data "$data" --checkpoint "$run/best.ckpt" --split test --output "$run/eval-test" --threads "$threads" | tail -6
  fi
done
