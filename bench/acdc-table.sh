#!/usr/bin/env bash
# The ACDC semi-supervised comparison at one CPU-sized setting: every method trained with the same resolution,
# batch, iterations, learning rate and seed, then scored on the 40 test volumes (medpy mode, best-on-val checkpoint).
# Usage: bench/acdc-table.sh LABELED [METHOD...]   env: SIZE ITERS BS LBS THREADS OUT DATA
# LABELED is what --labeled means for the data: ACDC patients (default data), or labeled images for HC18/PSFH/own data.
# Schedules written for the references' 30 000 iterations are scaled to ITERS (e.g. SSL4MIS's sigmoid ramp-up of
# 200 "epochs" of 150 iterations becomes 200·ITERS/30000; BCP's 10 000 pre-training iterations of 40 000 become ITERS/4,
# and ACTION's pre-training stage takes the same quarter). Schedules defined as fractions of training (ABD-I's ⅔,
# CAD's threshold and size cap) follow --iterations by themselves. SEMISEG: the command to run (default ./semiseg);
# point it at a copy of the build (dotnet /copy/SemiSeg.Cli.dll) to keep editing the checkout while the table runs.
# PARAMS: extra "k=v" method parameters (space-separated) appended after the scaled defaults (later ones win);
# TAG: a suffix for the run folders (e.g. TAG=-pre500 PARAMS="pretrain_iterations=500" bench/acdc-table.sh 7 bcp).
# bcp trains at a constant rate (its reference's ACDC schedule; `semiseg train`'s default for bcp since issue 18),
# every other method with poly.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
labeled="$1"; shift
methods=("$@"); [ ${#methods[@]} -eq 0 ] && methods=(supervised mean-teacher ua-mt cps unimatch bcp m3hl action abd cad)
size="${SIZE:-96}"; iters="${ITERS:-1000}"; bs="${BS:-8}"; lbs="${LBS:-4}"; threads="${THREADS:-$(nproc)}"
data="${DATA:-$root/../shared/data/acdc}"; out="${OUT:-$root/runs/table-${size}-${iters}}"
semiseg="${SEMISEG:-$root/semiseg}"
rampup=$(python3 -c "print(round(200*$iters/30000, 4))" 2>/dev/null || echo "scale=4; 200*$iters/30000" | bc)
rampup40=$(python3 -c "print(round(40*$iters/30000, 4))" 2>/dev/null || echo "scale=4; 40*$iters/30000" | bc)
start=$(( 1000 * iters / 30000 )); pre=$(( iters / 4 ))
for m in "${methods[@]}"; do
  case "$m" in
    mean-teacher) p=(--param "rampup=$rampup" --param "consistency_start=$start");;
    ua-mt|cps|abd|cad|ersr|transmedseg|medl) p=(--param "rampup=$rampup");;
    c3s3) p=(--param "rampup=$rampup40");;
    bcp|action) p=(--param "pretrain_iterations=$pre");;
    *) p=();;
  esac
  for kv in ${PARAMS:-}; do p+=(--param "$kv"); done
  tag="${TAG:-}"; run="$out/$m$tag-$labeled"
  mkdir -p "$out"
  # a run claimed by another queue (mkdir is atomic) is left to it
  if [ ! -f "$run/eval-test/metrics.json" ] && mkdir "$out/.claim-$m$tag-$labeled" 2>/dev/null; then
    # a run that dies (rather than finishing) is resumed from its last checkpoint, up to three times
    for attempt in 1 2 3 4; do
      resume=(); [ -f "$run/last.ckpt" ] && resume=(--resume)
      if $semiseg train --data "$data" --labeled "$labeled" --method "$m" --output "$run" --iterations "$iters" \
        --patch-size "$size" --batch-size "$bs" --labeled-bs "$lbs" --seed 1337 --threads "$threads" --workers 1 \
        --val-every 100 --save-every 100 --log-every 50 -q "${p[@]}" "${resume[@]}"; then break; fi
      echo "training $m ($labeled) stopped abnormally (attempt $attempt); resuming" >&2
    done
    $semiseg evaluate --data "$data" --checkpoint "$run/best.ckpt" --split test --output "$run/eval-test" --threads "$threads" | tail -8
  fi
done
