#!/usr/bin/env bash
# Per-method overhead at the table's setting (issue 21): each 2D method's training iteration (UNet, 96x96, batch 4+4,
# a late iteration: ramps done, BCP/ACTION/M3HL in their second stage) timed by `semiseg bench --method`, which also
# counts the iteration's network passes at the networks' output convolutions (an image with autograd 3, without 1,
# in units of one forward over the batch). Cost per pass = s/iteration ÷ passes, compared with Mean Teacher's.
# Two-network methods pair the UNet with a ResUNet2D (C3S3, MEDL), whose pass costs more: the weighted column divides
# by the passes priced at supervised's s/pass on each network instead. Each ratio compares a method with a Mean Teacher
# timed in the same process, their iterations interleaved (`--method a,b,...`): separate processes of one method differ
# by 15-25% on this VM, as much as the margins, while methods interleaved in one process meet the same machine state.
# The table gives, per method, the median over rounds of its s/iteration and of its ratio to Mean Teacher in the same
# process.
# Then ERSR against supervised and Mean Teacher on real HC18 images, likewise in one process per round.
# MODE=pairs (the default) runs one process per method and round holding only Mean Teacher and that method (and, for
# the two-network methods, supervised on both networks to price their passes): each method's iterations then meet a
# cache and allocator holding two methods' networks and activations, as a training run holds one. MODE=all runs every
# method in one process per round, as before: each method's step then starts on caches the other 16 methods' steps
# evicted, a per-step refill that weighs most on the methods with the fewest passes (BCP, M3HL: 2; supervised 1.5).
# On one build that table had M3HL at 1.33-1.37; paired with Mean Teacher it read 1.19-1.37 over eight processes.
# BCP's and M3HL's own times move by up to a quarter in stretches of seconds, within a process too, more than Mean
# Teacher's beside them (docs/results.md, sixth pass; `bench --json` keeps every iteration): rounds matter.
#   bench/method-overhead.sh [METHOD...]       env: MODE (pairs|all), ROUNDS (3), ITERS (20), WARMUP (40), THREADS (2), SEMISEG, HC18
# WARMUP is above .NET's tiered-JIT threshold (a method is recompiled optimised after 30 calls, and a step is called
# once per iteration): with 10, methods with more managed code (ERSR, M3HL, ACTION) still ran tier-0 code and paid
# the JIT thread (3.6% of ACTION's samples with 5 warm-up iterations) inside the timed iterations.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
semiseg="${SEMISEG:-$root/semiseg}"
rounds="${ROUNDS:-3}"; iters="${ITERS:-20}"; warm="${WARMUP:-40}"; threads="${THREADS:-2}"; mode="${MODE:-pairs}"
case "$mode" in pairs|all) ;; *) echo "MODE must be pairs or all (got '$mode')" >&2; exit 2 ;; esac
hc18="${HC18:-$root/../shared/data/hc18-subset}"
if [ $# -gt 0 ]; then methods=("$@")
else methods=(supervised mean-teacher ua-mt cps unimatch bcp m3hl abd cad action ersr meta-contrast transmedseg c3s3 medl); fi
# the table prices passes at supervised's cost and compares with Mean Teacher's: both always run
for need in mean-teacher supervised; do [[ " ${methods[*]} " == *" $need "* ]] || methods=("$need" "${methods[@]}"); done
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
echo "== machine: $(nproc) cores, $(lscpu | grep -m1 'Model name' | cut -d: -f2 | xargs); $rounds rounds, $iters timed iterations after $warm, $threads threads, MODE=$mode"
one() { # suffix for the tags, partner (tags this process's other methods TAG#PARTNER; empty: plain), methods (comma-separated), args...
  local suffix="$1" partner="$2" list="$3"; shift 3
  $semiseg bench --size 96 --batch 8 --iters "$iters" --warmup "$warm" --threads "$threads" --method "$list" "$@" \
    | grep '^semiseg 2D ' | while read -r line; do
        tag="$(echo "$line" | cut -d' ' -f3)$suffix"
        if [ -n "$partner" ] && [ "$tag" != "$partner" ]; then tag="$tag#$partner"; fi
        echo "$r	$tag	$line" | tee -a "$out/lines"
      done
}
for r in $(seq 1 "$rounds"); do
  echo "==== round $r"
  if [ "$mode" = all ]; then one "" "" "supervised@resunet,$(IFS=,; echo "${methods[*]}")"
  else
    for m in "${methods[@]}"; do
      case "$m" in
        mean-teacher) ;;
        supervised) one "" "" "mean-teacher,supervised,supervised@resunet" ;;   # Mean Teacher's own row, and the passes' prices
        c3s3|medl) one "" "$m" "mean-teacher,supervised,supervised@resunet,$m" ;;   # its passes priced in its own process
        *) one "" "$m" "mean-teacher,$m" ;;
      esac
    done
  fi
  if [ -d "$hc18" ]; then one "@hc18" "" "supervised,mean-teacher,ersr" --data "$hc18" --labeled 22
  else echo "HC18 rows skipped: $hc18 is absent"; fi
done
python3 - "$out/lines" <<'PY'
import re, sys, statistics as st
rows = {}   # tag -> round -> (s/iteration, passes)
for line in open(sys.argv[1]):
    rnd, tag, text = line.rstrip("\n").split("\t", 2)
    s = float(re.search(r"median ([0-9.]+) s/iter", text).group(1))
    passes = {k: float(v) for k, v in re.findall(r"(\w+2D) ([0-9.]+)", text.split("network passes", 1)[1].split(")")[0])}
    rows.setdefault(tag, {})[rnd] = (s, passes)
med = {t: (st.median(x[0] for x in v.values()), next(iter(v.values()))[1]) for t, v in rows.items()}
def prices(suffix=""):
    """s per pass of supervised on each network (in the process tagged by suffix, where it ran there)"""
    return {"UNet2D": med["supervised" + suffix][0] / med["supervised" + suffix][1]["UNet2D"],
            "ResUNet2D": med["supervised@resunet" + suffix][0] / med["supervised@resunet" + suffix][1]["ResUNet2D"]}
cost = prices()
def per_of(s, p): return s / sum(p.values())
def weighted_of(s, p, c=None): return s / sum(n * (c or cost)[k] for k, n in p.items())
def partner(t, ref):
    """the Mean Teacher row measured in t's own process (MODE=pairs), else the round's one"""
    return f"{ref}#{t}" if f"{ref}#{t}" in rows else ref
def paired(t, f, ref="mean-teacher"):
    """median over rounds of f(method) / f(Mean Teacher) in the same round (the same process)"""
    return st.median(f(*rows[t][r]) / f(*rows[partner(t, ref)][r]) for r in rows[t])
def own_prices(t): return prices("#" + t) if f"supervised#{t}" in med and f"supervised@resunet#{t}" in med else cost
def per(t): return per_of(*med[t])
def weighted(t): return weighted_of(*med[t], own_prices(t))
print(f"\ncost of one pass (supervised): UNet2D {cost['UNet2D']:.4f} s, ResUNet2D {cost['ResUNet2D']:.4f} s")
print("| method | s/iteration | network passes | s/pass | ÷ Mean Teacher's (same round) | s/iteration ÷ priced passes | ÷ Mean Teacher's (same round) |")
print("|---|---|---|---|---|---|---|")
for t in rows:
    if t == "supervised@resunet" or t.endswith("@hc18") or "#" in t: continue
    s, p = med[t]
    ps = " + ".join(f"{n:.2f} {k.replace('2D', '')}" for k, n in p.items())
    ref = partner(t, "mean-teacher")
    lo = min(per_of(*rows[t][r]) / per_of(*rows[ref][r]) for r in rows[t])
    hi = max(per_of(*rows[t][r]) / per_of(*rows[ref][r]) for r in rows[t])
    priced = lambda s, p, t=t: weighted_of(s, p, own_prices(t))
    print(f"| {t} | {s:.3f} | {ps} | {per(t):.4f} | {paired(t, per_of):.2f} ({lo:.2f}-{hi:.2f}) | {weighted(t):.2f} | {paired(t, priced):.2f} |")
if "ersr@hc18" in med:
    sh, mh, eh = (med[k][0] for k in ("supervised@hc18", "mean-teacher@hc18", "ersr@hc18"))
    it = lambda s, p: s
    print(f"\nreal HC18 images (loader on): supervised {sh:.3f} s/iteration, Mean Teacher {mh:.3f}, ERSR {eh:.3f}; ERSR = "
          f"{paired('ersr@hc18', it, 'supervised@hc18'):.2f}x supervised, {paired('ersr@hc18', it, 'mean-teacher@hc18'):.2f}x Mean Teacher per iteration "
          f"(same round), {paired('ersr@hc18', per_of, 'mean-teacher@hc18'):.2f}x per pass ({med['ersr@hc18'][1]['UNet2D']:.1f} and {med['mean-teacher@hc18'][1]['UNet2D']:.1f} passes)")
PY
