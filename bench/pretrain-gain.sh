#!/usr/bin/env bash
# The meta-label pre-training evidence: the same fine-tuning (supervised, LABELED ACDC patients, the table's setting)
# from a meta-label pre-trained encoder and from a random one (the table's supervised row, run here when missing).
# Usage: bench/pretrain-gain.sh [LABELED]   env: SIZE ITERS PRE_ITERS BS LBS THREADS OUT DATA SEMISEG
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
labeled="${1:-3}"
size="${SIZE:-96}"; iters="${ITERS:-1000}"; pre="${PRE_ITERS:-1000}"; bs="${BS:-8}"; lbs="${LBS:-4}"; threads="${THREADS:-$(nproc)}"
data="${DATA:-$root/../shared/data/acdc}"; out="${OUT:-$root/runs/table-${size}-${iters}}"
semiseg="${SEMISEG:-$root/semiseg}"
common=(--data "$data" --labeled "$labeled" --patch-size "$size" --batch-size "$bs" --labeled-bs "$lbs" --seed 1337 --threads "$threads" --workers 1 --log-every 50 -q)
if [ ! -f "$out/pretrain-$labeled/best.ckpt" ]; then
  # all training slices (labeled and unlabeled) in the contrastive batches; labels unused
  $semiseg pretrain "${common[@]}" --output "$out/pretrain-$labeled" --iterations "$pre" --save-every 100
fi
for init in random pretrained; do
  run="$out/supervised-$labeled"; extra=()
  [ "$init" = pretrained ] && { run="$out/supervised-pretrained-$labeled"; extra=(--init-encoder "$out/pretrain-$labeled/best.ckpt"); }
  if [ ! -f "$run/eval-test/metrics.json" ]; then
    $semiseg train "${common[@]}" --method supervised --output "$run" --iterations "$iters" --val-every 100 --save-every 100 "${extra[@]}"
    $semiseg evaluate --data "$data" --checkpoint "$run/best.ckpt" --split test --output "$run/eval-test" --threads "$threads" | tail -6
  fi
done
