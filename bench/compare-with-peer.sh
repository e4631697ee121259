#!/usr/bin/env bash
# Side-by-side speed comparison on this machine, in one session: SemiSeg's Mean-Teacher iteration (semiseg bench)
# and the PyTorch reference ../shared/bench/peer_mt.py as written and with channels_last. The machine's speed drifts
# (shared cores), so ROUNDS rounds interleave the four measurements; compare within a round.
# Usage: bench/compare-with-peer.sh [size] [batch] [iters]      (defaults: 256 24 5)   env: ROUNDS (default 1)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
size="${1:-256}"; batch="${2:-24}"; iters="${3:-5}"; rounds="${ROUNDS:-1}"
peer="$root/../shared/bench/peer_mt.py"
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "installing Debian's python3-torch for the reference..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
med() { grep -oE 'median [0-9.]+' | grep -oE '[0-9.]+'; }
for r in $(seq 1 "$rounds"); do
  echo "==== round $r"
  echo "== SemiSeg (default: channels_last, in-place activations)"
  ours=$("$root/semiseg" bench --mode mt --size "$size" --batch "$batch" --iters "$iters" --warmup 1 | grep -v '^iteration'); echo "$ours"
  echo "== SemiSeg, plain transcription (NCHW, out-of-place activations)"
  "$root/semiseg" bench --mode mt --size "$size" --batch "$batch" --iters "$iters" --warmup 1 --plain | grep -v '^iteration'
  echo "== PyTorch reference (as written)"
  p1=$(/usr/bin/python3 "$peer" "$size" "$batch" "$iters"); echo "$p1"
  echo "== PyTorch reference (channels_last)"
  p2=$(/usr/bin/python3 "$peer" "$size" "$batch" "$iters" cl); echo "$p2"
  a=$(echo "$ours" | med); b=$(echo "$p1" | med); c=$(echo "$p2" | med)
  python3 -c "print(f'round $r: SemiSeg {$a:.3f} s, {$b/$a:.2f}x the reference as written ({$b:.3f} s), {$c/$a:.2f}x its channels_last variant ({$c:.3f} s)')" 2>/dev/null || true
done
