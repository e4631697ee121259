# Does plain SupCon on ACDC's partition meta-label (the reference's batches: m scans x one slice per partition, two
# views, T = 0.07) fall below its chance level ln(2N-1) with the SSL4MIS UNet encoder at 96x96 within a CPU budget?
# Usage: /usr/bin/python3 bench/meta-label/supcon_probe.py [ITERS] [LR]   (Debian's python3-torch, h5py, scipy; ACDC=dir)
# Prints the plain SupCon loss (mean of the last 100 iterations) beside its shuffled level, chance ln(2N-1) and floor.
# An independent transcription (torch 1.13), to tell a SemiSeg defect from the method's behaviour at this budget.
import collections, math, os, re, sys, time
import h5py, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from scipy.ndimage import zoom
torch.manual_seed(0); np.random.seed(0); torch.set_num_threads(1)
root = os.environ.get('ACDC', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/data/acdc')); S, M, T = 96, 10, 0.07
ITERS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000; LR = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-3
names = [l.strip() for l in open(f'{root}/train_slices.list') if l.strip()]
scan_of = [re.sub(r'_slice_\d+$', '', n) for n in names]; count = collections.Counter(scan_of)
part = [min(2, (int(n.rsplit('_', 1)[1]) - 1) * 3 // count[s]) for n, s in zip(names, scan_of)]
X = []
for n in names:
    with h5py.File(f'{root}/data/{n}.h5') as f: img = f['image'][:]
    X.append(zoom(img, (S / img.shape[0], S / img.shape[1]), order=1).astype(np.float32))
X = torch.from_numpy(np.stack(X))[:, None]
groups = collections.defaultdict(lambda: [[], [], []])
for i, (s, p) in enumerate(zip(scan_of, part)): groups[s][p].append(i)
scans = [s for s in groups if all(groups[s])]
def block(i, o): return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU(0.01), nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU(0.01))
class Net(nn.Module):
    def __init__(s):
        super().__init__(); f = [16, 32, 64, 128, 256]
        s.b = nn.ModuleList([block(1, f[0])] + [block(f[i - 1], f[i]) for i in range(1, 5)])
        s.proj = nn.Sequential(nn.Linear(256, 256), nn.LeakyReLU(0.01), nn.Linear(256, 256))
    def forward(s, x):
        for i, b in enumerate(s.b): x = b(x if i == 0 else F.max_pool2d(x, 2))
        return F.normalize(s.proj(x.mean((2, 3))), dim=1)
def aug(x):
    out = []
    for xi in x:
        xi = torch.rot90(xi, np.random.randint(4), (1, 2))
        if np.random.rand() < 0.5: xi = xi.flip(2)
        out.append(xi * (1 + 0.4 * (np.random.rand() - 0.5)) + 0.2 * (np.random.rand() - 0.5))
    return torch.stack(out)
def supcon(z, keys):
    n = z.shape[0]; sim = z @ z.t() / T
    eye = torch.eye(n, dtype=torch.bool)
    logprob = sim - torch.logsumexp(sim.masked_fill(eye, -1e9), 1, keepdim=True)
    pos = (keys[:, None] == keys[None, :]) & ~eye
    return -(logprob * pos).sum(1).div(pos.sum(1)).mean()
net = Net(); opt = torch.optim.Adam(net.parameters(), LR)
t0 = time.time(); hist = []
for it in range(1, ITERS + 1):
    pick = np.random.choice(len(scans), M, replace=False)
    idx = [int(np.random.choice(groups[scans[k]][p])) for k in pick for p in range(3)]
    x = X[idx]; keys = torch.tensor([part[i] for i in idx] * 2)
    z = net(torch.cat([aug(x), aug(x)]))
    loss = supcon(z, keys)
    with torch.no_grad(): shuffled = supcon(z, keys[torch.randperm(len(keys))]).item()
    opt.zero_grad(); loss.backward(); opt.step(); hist.append((loss.item(), shuffled))
    if it % 100 == 0:
        h = np.array(hist[-100:]).mean(0)
        print(f'it {it} supcon {h[0]:.3f} shuffled {h[1]:.3f} chance {math.log(2 * len(idx) - 1):.3f} floor {math.log(19):.3f} ({time.time() - t0:.0f} s)', flush=True)
