# Is ACDC's "partition" meta-label (slice position bucket, 3 thirds) learnable from a 96x96 zoomed slice by the
# SSL4MIS UNet encoder at all, with direct supervision, within a CPU budget? Independent of SemiSeg (torch 1.13).
# Usage: /usr/bin/python3 bench/meta-label/partition_probe.py [ITERS]   (Debian's python3-torch, h5py, scipy; ACDC=dir, default ../shared/data/acdc)
# Prints the validation accuracy of slice-position (3 buckets) classification every 100 iterations.
import collections, os, re, sys, time
import h5py, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from scipy.ndimage import zoom
torch.manual_seed(0); np.random.seed(0); torch.set_num_threads(1)
root = os.environ.get('ACDC', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/data/acdc'))
S, B, ITERS = 96, 30, int(sys.argv[1]) if len(sys.argv) > 1 else 1000
def bucket(idx, L, b=3): return min(b - 1, idx * b // L)
names = [l.strip() for l in open(f'{root}/train_slices.list') if l.strip()]
count = collections.Counter(re.sub(r'_slice_\d+$', '', n) for n in names)
def load(img): return zoom(img, (S / img.shape[0], S / img.shape[1]), order=1).astype(np.float32)
X, Y = [], []
for n in names:
    vol = re.sub(r'_slice_\d+$', '', n); idx = int(n.rsplit('_', 1)[1]) - 1  # names count from 1
    with h5py.File(f'{root}/data/{n}.h5') as f: X.append(load(f['image'][:]))
    Y.append(bucket(idx, count[vol]))
X = torch.from_numpy(np.stack(X))[:, None]; Y = torch.tensor(Y)
VX, VY = [], []
for v in [l.strip() for l in open(f'{root}/val.list') if l.strip()]:
    with h5py.File(f'{root}/data/{v}.h5') as f: vol = f['image'][:]
    for i in range(vol.shape[0]): VX.append(load(vol[i])); VY.append(bucket(i, vol.shape[0]))
VX = torch.from_numpy(np.stack(VX))[:, None]; VY = torch.tensor(VY)
print('train', X.shape, torch.bincount(Y).tolist(), 'val', VX.shape, torch.bincount(VY).tolist(), flush=True)
def block(i, o): return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU(0.01), nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU(0.01))
class Enc(nn.Module):  # SSL4MIS UNet encoder, dropout off
    def __init__(s):
        super().__init__(); f = [16, 32, 64, 128, 256]
        s.b = nn.ModuleList([block(1, f[0])] + [block(f[i - 1], f[i]) for i in range(1, 5)]); s.head = nn.Linear(256, 3)
    def forward(s, x):
        for i, b in enumerate(s.b): x = b(x if i == 0 else F.max_pool2d(x, 2))
        return s.head(x.mean((2, 3)))
net = Enc(); opt = torch.optim.Adam(net.parameters(), 1e-3)
def aug(x):  # flips / rot90 and intensity jitter, as the contrastive views
    k = np.random.randint(4); x = torch.rot90(x, k, (2, 3))
    if np.random.rand() < 0.5: x = x.flip(3)
    return x * (1 + 0.2 * (torch.rand(x.shape[0], 1, 1, 1) - 0.5)) + 0.1 * (torch.rand(x.shape[0], 1, 1, 1) - 0.5)
def evaluate():
    net.eval()
    with torch.no_grad(): acc = (net(VX).argmax(1) == VY).float().mean().item()
    net.train(); return acc
t0 = time.time()
for it in range(1, ITERS + 1):
    i = torch.randint(0, len(X), (B,)); loss = F.cross_entropy(net(aug(X[i])), Y[i])
    opt.zero_grad(); loss.backward(); opt.step()
    if it % 100 == 0: print(f'it {it} loss {loss.item():.3f} val acc {evaluate():.3f} ({time.time() - t0:.0f} s)', flush=True)
