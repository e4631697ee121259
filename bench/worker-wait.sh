#!/usr/bin/env bash
# What runs on one thread while the other waits (issue 21, seventh pass). On 2 threads libtorch's operations run on
# the caller's thread and one OpenMP worker; whatever the caller does alone (managed code, operations too small for
# libtorch to split, oneDNN's serial parts) leaves the worker waiting. `perf` samples both threads at 4 kHz through
# `semiseg bench --method METHOD`; the timeline is cut into 0.5 ms bins, and a bin in which the worker has no sample
# outside libgomp (its spin and barrier code) counts as a wait. The summary gives the share of such bins and, over the
# caller's samples in them, what it ran, by library and by kernel. The first 45% of the run (start-up, the kernel
# self-check and the warm-up iterations) is left out.
#   bench/worker-wait.sh METHOD [SIZE BATCH ITERS]     # e.g. bench/worker-wait.sh bcp; defaults 96 8 150
# Needs perf (Debian: linux-perf) and the rights to sample this process. Compare methods by running it for each.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
method="${1:?usage: bench/worker-wait.sh METHOD [SIZE BATCH ITERS]}"; size="${2:-96}"; batch="${3:-8}"; iters="${4:-150}"
command -v perf >/dev/null || { echo "worker-wait.sh: perf not found (Debian: apt install linux-perf)" >&2; exit 2; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
# managed frames get names from the runtime's perf map; oneDNN's generated kernels have none ("jit (oneDNN)")
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 \
  perf record -q -F 4000 -e cpu-clock -o "$tmp/perf.data" -- \
  "$root/semiseg" bench --method "$method" --size "$size" --batch "$batch" --iters "$iters" --warmup 40 --threads 2 |
  grep -E 'median'
perf script -i "$tmp/perf.data" -F tid,time,ip,sym,dso 2>/dev/null > "$tmp/samples.txt"
python3 - "$tmp/samples.txt" <<'PY'
import sys, re, collections
rows, per_tid = [], collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r'\s*(\d+)\s+([\d.]+):\s+[0-9a-f]+\s+(.*)\((\S+)\)\s*$', line)
    if not m: continue
    tid, t, sym, dso = m.groups()
    sym, lib = sym.strip(), dso.split('/')[-1]
    cat = 'libgomp' if 'libgomp' in lib else ('jit (oneDNN)' if sym == '[unknown]' else 'managed') if 'perf-' in lib else lib
    rows.append((float(t), tid, cat, sym)); per_tid[tid] += 1
# the two busiest threads: the caller runs the managed step, the worker is the other one
(a, _), (b, _) = per_tid.most_common(2)
managed = collections.Counter(tid for _, tid, cat, _ in rows if cat == 'managed')
caller, worker = (a, b) if managed[a] >= managed[b] else (b, a)
t0, t1 = min(r[0] for r in rows), max(r[0] for r in rows)
start, width = t0 + 0.45 * (t1 - t0), 0.0005
busy = collections.Counter(); caller_bins = collections.defaultdict(list)
for t, tid, cat, sym in rows:
    if t < start: continue
    k = int((t - start) / width)
    if tid == worker and cat != 'libgomp': busy[k] += 1
    elif tid == caller: caller_bins[k].append((cat, sym))
bins = int((t1 - start) / width) + 1
waits = [k for k in range(bins) if busy[k] == 0]
total = sum(len(v) for v in caller_bins.values())
def kernel(cat, sym):
    if cat != 'libtorch_cpu.so': return sym if cat == 'managed' else ''
    sym = sym.replace('(anonymous namespace)::', '')
    for pat in (r'native::(?:AVX2::|AVX512::)?(\w+_(?:kernel|impl))(?!\w)', r'native::(cpu_\w+)', r'(dnnl::impl::cpu::x64::\w+)', r'^(?:[\w:<>, ]+ )?([\w:]*\w)(?:<|\()'):
        m = re.search(pat, sym)
        if m: return m.group(1)
    return sym[:60]
by_lib, by_kernel = collections.Counter(), collections.Counter()
for k in waits:
    for cat, sym in caller_bins.get(k, []):
        by_lib[cat] += 1
        name = kernel(cat, sym)
        if name: by_kernel[(cat, name)] += 1
alone = sum(by_lib.values())
print(f"worker waits in {100 * len(waits) / bins:.1f}% of {bins} bins of 0.5 ms; the caller runs alone in "
      f"{100 * alone / max(total, 1):.1f}% of its {total} samples (threads {caller} caller, {worker} worker)")
print("the caller meanwhile, by library (% of its samples): " + ", ".join(f"{c} {100 * n / total:.1f}" for c, n in by_lib.most_common(8)))
print("by kernel or managed method:")
for (c, s), n in by_kernel.most_common(15): print(f"  {100 * n / total:5.2f}%  {s[:110]}")
PY
