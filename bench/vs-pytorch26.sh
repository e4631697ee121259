#!/usr/bin/env bash
# SemiSeg against PyTorch 2.6 (Debian 13's python3-torch in a chroot, bench/pytorch26-chroot.sh; oneDNN 3.x with
# AVX-512 convolution kernels) on this machine, interleaved: each round times SemiSeg, the peer as written (NCHW) and
# the peer in channels_last, one process each; the summary gives the median over rounds of each one's median and
# the ratios. The machine should be otherwise idle.
#   bench/vs-pytorch26.sh 2d SIZE BATCH ITERS          # Mean-Teacher iteration, ../shared/bench/peer_mt.py
#   bench/vs-pytorch26.sh 3d DEPTH SIZE L U ITERS      # VNet Mean-Teacher iteration, ../shared/bench/peer_vnet_mt.py
#   bench/vs-pytorch26.sh sw D H W REPS                # VNet sliding-window inference, bench/peer_vnet_sliding_window.py
#   bench/vs-pytorch26.sh inf2d SIZE                    # 2D UNet inference, batches of 16 (s per batch, best of 3 / 5)
# env: ROUNDS (default 3), THREADS (default 2), SEMISEG (default ./semiseg; e.g. "dotnet /path/SemiSeg.Cli.dll"),
#      WARMUP (2d only, default 2): SemiSeg's untimed iterations. .NET recompiles a method after 30 calls, so
#      WARMUP=40 with ITERS >= 60 times it at steady state; the peer drops its first iteration and takes the median
#      of the rest, and ITERS >= 60 leaves its own warm-up out of its median too
#      PEER_JEMALLOC=1: a fourth process per round, the channels_last peer on jemalloc with ./semiseg's MALLOC_CONF
#      (PyTorch's own allocator calls glibc, which maps and unmaps every large tensor and faults its pages again)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$root/../shared/bench"
rounds="${ROUNDS:-3}"; threads="${THREADS:-2}"; export THREADS="$threads"
semiseg="${SEMISEG:-$root/semiseg}"
chroot26="$root/bench/pytorch26-chroot.sh"
"$chroot26" setup >/dev/null
kind="${1:?usage: see the header}"; shift
case "$kind" in
  2d) size=$1; batch=$2; iters=$3
      ours() { $semiseg bench --mode mt --size "$size" --batch "$batch" --iters "$iters" --warmup "${WARMUP:-2}" --threads "$threads" | grep -E 'median|alone'; }
      peer() { "$chroot26" run "$shared/peer_mt.py" "$size" "$batch" "$iters" "$@"; } ;;
  3d) depth=$1; size=$2; l=$3; u=$4; iters=$5
      ours() { $semiseg bench --volume-method mean-teacher --patch "$depth,$size,$size" --volume-batch "$l,$u" --iters "$iters" --warmup 1 --threads "$threads" | grep 'median'; }
      peer() { "$chroot26" run "$shared/peer_vnet_mt.py" "$depth" "$size" "$l" "$u" "$iters" "$@"; } ;;
  sw) d=$1; h=$2; w=$3; reps=$4
      ours() { $semiseg bench --sliding-window "$d,$h,$w" --iters "$reps" --threads "$threads" | grep 'median'; }
      peer() { "$chroot26" run "$root/bench/peer_vnet_sliding_window.py" "$d" "$h" "$w" "$reps" "$@"; } ;;
  inf2d) size=$1
      # SemiSeg's inference line gives slices/s over batches of 16; as s/batch to compare
      ours() { $semiseg bench --mode supervised --size "$size" --batch 2 --iters 1 --warmup 0 --threads "$threads" | grep 'inference' | awk '{for (i = 1; i < NF; i++) if ($(i + 1) == "slices/s") printf "inference median %.4f s/batch (%s slices/s)\n", 16 / $i, $i}'; }
      peer() { "$chroot26" run "$root/bench/peer_unet_inference.py" "$size" 5 "$@" | sed 's/best/median/'; } ;;
  *) sed -n 2,10p "$0"; exit 2 ;;
esac
echo "== machine: $(nproc) cores, $(lscpu | grep -m1 'Model name' | cut -d: -f2 | xargs); AVX-512: $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "== workload: $kind $*; $rounds rounds, $threads threads"
num() { grep -oE 'median [0-9.]+' | head -n 1 | grep -oE '[0-9.]+'; }
a=(); b=(); c=(); j=(); f=()
for r in $(seq 1 "$rounds"); do
  o=$(ours); echo "round $r SemiSeg:            $o"; a+=("$(echo "$o" | num)")
  # 2d: the iteration's convolutions alone (bench's floor line), to set against what a ratio goal asks
  fl=$(echo "$o" | grep -oE 'nothing else\): [0-9.]+' | grep -oE '[0-9.]+$' || true); [ -n "$fl" ] && f+=("$fl")
  p=$(peer); echo "round $r PyTorch 2.6 NCHW:   $p"; b+=("$(echo "$p" | num)")
  q=$(peer cl); echo "round $r PyTorch 2.6 cl:     $q"; c+=("$(echo "$q" | num)")
  if [ "${PEER_JEMALLOC:-0}" = 1 ]; then
    q=$(PEER_ALLOCATOR=jemalloc peer cl); echo "round $r PyTorch 2.6 cl, jemalloc: $q"; j+=("$(echo "$q" | num)")
  fi
done
python3 - "${a[*]}" "${b[*]}" "${c[*]}" "${j[*]}" "${f[*]}" <<'PY'
import sys, statistics as s
a, b, c, j, f = ([float(v) for v in x.split()] for x in sys.argv[1:6])
ma, mb, mc = s.median(a), s.median(b), s.median(c)
print(f"median over rounds (s): SemiSeg {ma:.3f}, PyTorch 2.6 NCHW {mb:.3f}, channels_last {mc:.3f}")
print(f"SemiSeg is {mb/ma:.2f}x PyTorch 2.6 NCHW and {mc/ma:.2f}x its channels_last variant (per-round: "
      + ", ".join(f"{y/x:.2f}/{z/x:.2f}" for x, y, z in zip(a, b, c)) + ")")
if j:
    mj = s.median(j)
    print(f"channels_last on jemalloc {mj:.3f}: SemiSeg is {mj/ma:.2f}x it (per-round: " + ", ".join(f"{z/x:.2f}" for x, z in zip(a, j)) + ")")
if f:
    mf = s.median(f)
    print(f"SemiSeg's convolutions alone {mf:.3f} s ({100*mf/ma:.0f}% of its iteration; per-round: " + ", ".join(f"{v:.3f}" for v in f)
          + f"); 1.5x the channels_last peer would be {mc/1.5:.3f} s for the whole iteration")
PY
