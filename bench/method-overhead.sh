#!/usr/bin/env bash
# Per-method overhead at the table's setting (issue 21): each 2D method's training iteration (UNet, 96x96, batch 4+4,
# a late iteration: ramps done, BCP/ACTION/M3HL in their second stage) timed by `semiseg bench --method`, which also
# counts the iteration's network passes at the networks' output convolutions (an image with autograd 3, without 1,
# in units of one forward over the batch). Cost per pass = s/iteration ÷ passes, compared with Mean Teacher's.
# Two-network methods pair the UNet with a ResUNet2D (C3S3, MEDL), whose pass costs more: the weighted column divides
# by the passes priced at supervised's s/pass on each network instead. Each round is one process that times every
# method with their iterations interleaved (`--method a,b,...`): separate processes of one method differ by 15-25% on
# this VM, as much as the margins, while methods interleaved in one process meet the same machine state. The table
# gives, per method, the median over rounds of its s/iteration and of its ratio to Mean Teacher in the same round.
# Then ERSR against supervised and Mean Teacher on real HC18 images, likewise in one process per round.
#   bench/method-overhead.sh [METHOD...]       env: ROUNDS (3), ITERS (20), WARMUP (40), THREADS (2), SEMISEG, HC18
# WARMUP is above .NET's tiered-JIT threshold (a method is recompiled optimised after 30 calls, and a step is called
# once per iteration): with 10, methods with more managed code (ERSR, M3HL, ACTION) still ran tier-0 code and paid
# the JIT thread (3.6% of ACTION's samples with 5 warm-up iterations) inside the timed iterations.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
semiseg="${SEMISEG:-$root/semiseg}"
rounds="${ROUNDS:-3}"; iters="${ITERS:-20}"; warm="${WARMUP:-40}"; threads="${THREADS:-2}"
hc18="${HC18:-$root/../shared/data/hc18-subset}"
if [ $# -gt 0 ]; then methods=("$@")
else methods=(supervised mean-teacher ua-mt cps unimatch bcp m3hl abd cad action ersr meta-contrast transmedseg c3s3 medl); fi
# the table prices passes at supervised's cost and compares with Mean Teacher's: both always run
for need in mean-teacher supervised; do [[ " ${methods[*]} " == *" $need "* ]] || methods=("$need" "${methods[@]}"); done
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
echo "== machine: $(nproc) cores, $(lscpu | grep -m1 'Model name' | cut -d: -f2 | xargs); $rounds rounds, $iters timed iterations after $warm, $threads threads"
one() { # suffix for the tags, methods (comma-separated), args...
  local suffix="$1" list="$2"; shift 2
  $semiseg bench --size 96 --batch 8 --iters "$iters" --warmup "$warm" --threads "$threads" --method "$list" "$@" \
    | grep '^semiseg 2D ' | while read -r line; do
        tag="$(echo "$line" | cut -d' ' -f3)$suffix"
        echo "$r	$tag	$line" | tee -a "$out/lines"
      done
}
for r in $(seq 1 "$rounds"); do
  echo "==== round $r"
  one "" "supervised@resunet,$(IFS=,; echo "${methods[*]}")"
  if [ -d "$hc18" ]; then one "@hc18" "supervised,mean-teacher,ersr" --data "$hc18" --labeled 22
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
cost = {"UNet2D": med["supervised"][0] / med["supervised"][1]["UNet2D"],
        "ResUNet2D": med["supervised@resunet"][0] / med["supervised@resunet"][1]["ResUNet2D"]}
def per_of(s, p): return s / sum(p.values())
def weighted_of(s, p): return s / sum(n * cost[k] for k, n in p.items())
def paired(t, f, ref="mean-teacher"):
    """median over rounds of f(method) / f(Mean Teacher) in the same round (the same process)"""
    return st.median(f(*rows[t][r]) / f(*rows[ref][r]) for r in rows[t])
def per(t): return per_of(*med[t])
def weighted(t): return weighted_of(*med[t])
print(f"\ncost of one pass (supervised): UNet2D {cost['UNet2D']:.4f} s, ResUNet2D {cost['ResUNet2D']:.4f} s")
print("| method | s/iteration | network passes | s/pass | ÷ Mean Teacher's (same round) | s/iteration ÷ priced passes | ÷ Mean Teacher's (same round) |")
print("|---|---|---|---|---|---|---|")
for t in rows:
    if t == "supervised@resunet" or t.endswith("@hc18"): continue
    s, p = med[t]
    ps = " + ".join(f"{n:.2f} {k.replace('2D', '')}" for k, n in p.items())
    lo = min(per_of(*rows[t][r]) / per_of(*rows["mean-teacher"][r]) for r in rows[t])
    hi = max(per_of(*rows[t][r]) / per_of(*rows["mean-teacher"][r]) for r in rows[t])
    print(f"| {t} | {s:.3f} | {ps} | {per(t):.4f} | {paired(t, per_of):.2f} ({lo:.2f}-{hi:.2f}) | {weighted(t):.2f} | {paired(t, weighted_of):.2f} |")
if "ersr@hc18" in med:
    sh, mh, eh = (med[k][0] for k in ("supervised@hc18", "mean-teacher@hc18", "ersr@hc18"))
    it = lambda s, p: s
    print(f"\nreal HC18 images (loader on): supervised {sh:.3f} s/iteration, Mean Teacher {mh:.3f}, ERSR {eh:.3f}; ERSR = "
          f"{paired('ersr@hc18', it, 'supervised@hc18'):.2f}x supervised, {paired('ersr@hc18', it, 'mean-teacher@hc18'):.2f}x Mean Teacher per iteration "
          f"(same round), {paired('ersr@hc18', per_of, 'mean-teacher@hc18'):.2f}x per pass ({med['ersr@hc18'][1]['UNet2D']:.1f} and {med['mean-teacher@hc18'][1]['UNet2D']:.1f} passes)")
PY
