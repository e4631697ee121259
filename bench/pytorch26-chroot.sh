#!/usr/bin/env bash
# Builds (once) a Debian 13 (trixie) chroot with its python3-torch 2.6 (oneDNN 3.x with AVX-512 kernels), the modern
# PyTorch peer for the speed comparisons, and runs a peer script inside it on this machine's CPU.
#   bench/pytorch26-chroot.sh setup                      # debootstrap + apt-get install python3-torch (root, ~1 GB)
#   bench/pytorch26-chroot.sh run ../shared/bench/peer_mt.py 256 24 3 cl
#   PEER_ALLOCATOR=jemalloc bench/pytorch26-chroot.sh run ...   # the peer on jemalloc with ./semiseg's MALLOC_CONF
# The mirror is the one apt is configured with here (first URIs line of /etc/apt/sources.list.d/*.sources or the
# first deb line of /etc/apt/sources.list). CHROOT=DIR changes the location (default /var/tmp/semiseg-trixie).
set -euo pipefail
dir="${CHROOT:-/var/tmp/semiseg-trixie}"
mirror() {
  local m
  m=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 | awk '{print $2}' || true)
  [ -n "$m" ] || m=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | head -n 1 | awk '{print $2}' || true)
  [ -n "$m" ] || { echo "no Debian mirror configured for apt" >&2; exit 1; }
  echo "$m"
}
case "${1:-}" in
  setup)
    if [ -x "$dir/usr/bin/python3" ] && chroot "$dir" python3 -c 'import torch' 2>/dev/null; then echo "ready: $dir"; exit 0; fi
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
    m=$(mirror)
    [ -d "$dir/usr" ] || debootstrap --variant=minbase trixie "$dir" "$m"
    mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
    chroot "$dir" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -qq --no-install-recommends python3-torch python3-numpy libjemalloc2
    chroot "$dir" python3 -c 'import torch; print("torch", torch.__version__, torch.backends.mkldnn.is_available())'
    ;;
  run)
    shift
    script="$1"; shift
    mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
    mkdir -p "$dir/bench"
    cp "$script" "$dir/bench/$(basename "$script")"
    # peers that read another peer's definitions (peer_unet_inference.py reads peer_mt.py) find it beside them
    shared="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/bench"
    for f in "$shared"/*.py; do [ -f "$f" ] && cp "$f" "$dir/bench/"; done
    alloc=()
    if [ "${PEER_ALLOCATOR:-}" = jemalloc ]; then
      [ -f "$dir/usr/lib/x86_64-linux-gnu/libjemalloc.so.2" ] || DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -qq --no-install-recommends libjemalloc2 >/dev/null
      # the MALLOC_CONF ./semiseg sets by default, read from it so the two cannot drift apart
      conf="$(grep -oE 'MALLOC_CONF:-[^}]+' "$(dirname "${BASH_SOURCE[0]}")/../semiseg" | head -n 1 | cut -d- -f2-)"
      [ -n "$conf" ] || { echo "bench/pytorch26-chroot.sh: no default MALLOC_CONF found in ./semiseg" >&2; exit 1; }
      alloc=(LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 "MALLOC_CONF=$conf")
    fi
    chroot "$dir" env THREADS="${THREADS:-2}" "${alloc[@]}" python3 "/bench/$(basename "$script")" "$@"
    ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
