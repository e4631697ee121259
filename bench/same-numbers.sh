#!/usr/bin/env bash
# usage: bench/same-numbers.sh CLI_DLL OUTDIR
# Short deterministic runs to show that a change keeps the numbers: 2D supervised and mean-teacher on the cardiac
# phantom (120 it), 3D VNet supervised on it (40 it) and mean-teacher on the LA phantom (16 it), --threads 1, a log
# line every iteration; then evaluate and predict with the 2D and 3D best checkpoints. Compare two builds (e.g. a copy
# of src/SemiSeg.Cli/bin/Release/net10.0 from before and after a refactor) by OUTDIR/*.numbers, *.validation.csv,
# *.metrics.csv and *.pred.sha. The phantoms are written once beside OUTDIR. Needs /usr/bin/python3 with nibabel.
set -euo pipefail
cli="$1"; out="$2"; mkdir -p "$out"; data="$(dirname "$out")"
S() { dotnet "$cli" "$@"; }
[ -d "$data/cardiac" ] || S phantom cardiac -o "$data/cardiac" >/dev/null
[ -d "$data/la" ] || S phantom la -o "$data/la" --count 8 >/dev/null
for m in supervised mean-teacher; do
  S train -d "$data/cardiac" -m $m -o "$out/$m" --iterations 120 --patch-size 64 --batch-size 4 --labeled-bs 2 --val-every 40 --save-every 40 --lr 0.03 --log-every 1 --threads 1 --labeled 4 -q
done
S train -d "$data/cardiac" --network vnet -m supervised -o "$out/vnet" --iterations 40 --patch-size 32 --patch-depth 16 --batch-size 2 --labeled-bs 1 --val-every 20 --save-every 20 --lr 0.05 --log-every 1 --threads 1 --labeled 4 -q
S train -d "$data/la" --network vnet -m mean-teacher -o "$out/vnet-mt" --iterations 16 --patch-size 32 --patch-depth 16 --batch-size 2 --labeled-bs 1 --val-every 8 --save-every 8 --log-every 1 --threads 1 --labeled 4 -q
for r in supervised mean-teacher vnet vnet-mt; do
  sed -E 's/^\[[^]]*\] //; s/ [0-9.]+ it\/s data-wait [0-9.]+%//; s/\([0-9.]+ s\/iteration\)//; s/data wait .*//; s/threads [0-9]+//' "$out/$r/train.log" | grep -E '^(it |validation|finished|stopped)' > "$out/$r.numbers"
  cp "$out/$r/validation.csv" "$out/$r.validation.csv" 2>/dev/null || true
done
wc -l "$out"/*.numbers
for r in supervised vnet; do
  S evaluate -d "$data/cardiac" --labeled 4 -c "$out/$r/best.ckpt" --threads 1 -o "$out/$r/eval" >/dev/null
  cp "$out/$r/eval/metrics.csv" "$out/$r.metrics.csv"
  S predict -c "$out/$r/best.ckpt" -i "$data/cardiac"/imagesTs -o "$out/$r/pred" --threads 1 >/dev/null
  (cd "$out/$r/pred" && for f in *; do /usr/bin/python3 -c "import nibabel as n,hashlib,sys; print(sys.argv[1], hashlib.sha1(n.load(sys.argv[1]).get_fdata().tobytes()).hexdigest())" "$f"; done) > "$out/$r.pred.sha"
done
