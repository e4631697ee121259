#!/usr/bin/env bash
# The 3D comparison at one CPU-sized setting: every 3D method trained with the same network, patch, batch, iterations,
# learning rate and seed on the LA-layout data, then scored on test.list with a sliding window (medpy mode, the LA
# lineage's largest-component post-processing, last weights: the LA protocol has no validation set).
# Usage: bench/volume-table.sh LABELED [METHOD...]   env: DATA (default: a fresh `semiseg phantom la` in runs/la-phantom)
#   NET (vnet) PATCH (48) DEPTH (32) ITERS (400) BS (4) LBS (2) THREADS OUT SEMISEG PARAMS TAG
# Schedules written for the lineage's 6000 iterations are scaled to ITERS (UA-MT's ramp-up of 40 "epochs" of 150
# iterations becomes 40·ITERS/6000; BCP's pre-training 2000 of 15000 becomes ITERS·2/15; C3S3's ramp-up of 40 "epochs"
# in its 2500 iterations becomes 40·ITERS/2500); M&N's warm-up is a fraction.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
labeled="$1"; shift
methods=("$@"); [ ${#methods[@]} -eq 0 ] && methods=(supervised mean-teacher mn)
net="${NET:-vnet}"; patch="${PATCH:-48}"; depth="${DEPTH:-32}"; iters="${ITERS:-400}"; bs="${BS:-4}"; lbs="${LBS:-2}"
threads="${THREADS:-$(nproc)}"; out="${OUT:-$root/runs/volume-$net-$iters}"; semiseg="${SEMISEG:-$root/semiseg}"
data="${DATA:-$root/runs/la-phantom}"
[ -f "$data/train.list" ] || $semiseg phantom la -o "$data"
rampup=$(python3 -c "print(round(40*$iters/6000, 4))"); pre=$(( iters * 2 / 15 ))
for m in "${methods[@]}"; do
  case "$m" in
    mean-teacher|ua-mt) p=(--param "rampup=$rampup");;
    cps) p=(--param "rampup=$(python3 -c "print(round(200*$iters/30000, 4))")");;
    bcp) p=(--param "pretrain_iterations=$pre");;
    c3s3) p=(--param "rampup=$(python3 -c "print(round(40*$iters/2500, 4))")");;
    *) p=();;
  esac
  for kv in ${PARAMS:-}; do p+=(--param "$kv"); done
  run="$out/$m${TAG:-}-$labeled"
  [ -f "$run/eval-test/metrics.json" ] && continue
  resume=(); [ -f "$run/last.ckpt" ] && resume=(--resume)
  $semiseg train --network "$net" --data "$data" --labeled "$labeled" --method "$m" --output "$run" --iterations "$iters" \
    --patch-size "$patch" --patch-depth "$depth" --batch-size "$bs" --labeled-bs "$lbs" --seed 1337 --threads "$threads" \
    --workers 1 --save-every 50 --log-every 25 -q "${p[@]}" "${resume[@]}"
  $semiseg evaluate --data "$data" --checkpoint "$run/best.ckpt" --split test --largest-component --output "$run/eval-test" --threads "$threads" | tail -4
done
