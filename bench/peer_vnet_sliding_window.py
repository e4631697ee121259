"""Peer for 3D inference: the LA lineage's sliding-window prediction (UA-MT's test_util.test_single_case) with its VNet
(networks/vnet.py as in ../shared/bench/peer_vnet_mt.py), on CPU: pad to the patch, windows of 80x112x112 (D,H,W; the
lineage's 112x112x80) at strides 4 (depth) and 18 (height, width), one window per forward, softmax summed into a
score map and divided by the window count, argmax. Random volume; eval mode; no autograd.
Prints median seconds per volume over REPS after one warm-up.
Usage: peer_vnet_sliding_window.py [D] [H] [W] [reps] [cl]   (defaults: 88 144 144 3; cl: channels_last_3d)"""
import sys, math, time, statistics, resource, os, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(int(os.environ.get('THREADS', '2'))); torch.manual_seed(0)
a = sys.argv[1:]
D = int(a[0]) if len(a) > 0 else 88
H = int(a[1]) if len(a) > 1 else 144
W = int(a[2]) if len(a) > 2 else 144
R = int(a[3]) if len(a) > 3 else 3
CL = len(a) > 4 and a[4] == 'cl'
MF = torch.channels_last_3d if CL else torch.contiguous_format
PD, PH, PW, SZ, SXY = 80, 112, 112, 4, 18


def stage(cin, cout, n):
    layers = []
    for i in range(n):
        layers += [nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def down(cin, cout): return nn.Sequential(nn.Conv3d(cin, cout, 2, stride=2), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
def up(cin, cout): return nn.Sequential(nn.ConvTranspose3d(cin, cout, 2, stride=2), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class VNet(nn.Module):
    def __init__(s, cin=1, ncls=2, f=16):
        super().__init__()
        s.enc = nn.ModuleList([stage(cin, f, 1), stage(2 * f, 2 * f, 2), stage(4 * f, 4 * f, 3), stage(8 * f, 8 * f, 3), stage(16 * f, 16 * f, 3)])
        s.dw = nn.ModuleList([down(f, 2 * f), down(2 * f, 4 * f), down(4 * f, 8 * f), down(8 * f, 16 * f)])
        s.upb = nn.ModuleList([up(16 * f, 8 * f), up(8 * f, 4 * f), up(4 * f, 2 * f), up(2 * f, f)])
        s.dec = nn.ModuleList([stage(8 * f, 8 * f, 3), stage(4 * f, 4 * f, 3), stage(2 * f, 2 * f, 2), stage(f, f, 1)])
        s.out = nn.Conv3d(f, ncls, 1)
        s.drop = nn.Dropout3d(0.5)

    def forward(s, x):
        skips = []
        for i in range(5):
            x = s.enc[i](x)
            if i < 4:
                skips.append(x)
                x = s.dw[i](x)
        x = s.drop(x)
        for j in range(4):
            x = s.dec[j](s.upb[j](x) + skips[3 - j])
        return s.out(s.drop(x))


def predict(net, image):
    d, h, w = image.shape
    pd, ph, pw = max(PD - d, 0), max(PH - h, 0), max(PW - w, 0)
    image = F.pad(image, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2, pd // 2, pd - pd // 2))
    dd, hh, ww = image.shape
    sz, sy, sx = (math.ceil((dd - PD) / SZ) + 1, math.ceil((hh - PH) / SXY) + 1, math.ceil((ww - PW) / SXY) + 1)
    score = torch.zeros(2, dd, hh, ww); cnt = torch.zeros(dd, hh, ww); n = 0
    for i in range(sz):
        z = min(SZ * i, dd - PD)
        for j in range(sy):
            y = min(SXY * j, hh - PH)
            for k in range(sx):
                x = min(SXY * k, ww - PW)
                patch = image[z:z + PD, y:y + PH, x:x + PW].reshape(1, 1, PD, PH, PW).contiguous(memory_format=MF)
                p = F.softmax(net(patch), dim=1)[0]
                score[:, z:z + PD, y:y + PH, x:x + PW] += p
                cnt[z:z + PD, y:y + PH, x:x + PW] += 1
                n += 1
    score = (score / cnt.unsqueeze(0))[:, pd // 2:pd // 2 + d, ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
    return score.argmax(0), n


net = VNet().to(memory_format=MF).eval()
vol = torch.rand(D, H, W) * 2 - 1
times = []
with torch.no_grad():
    for r in range(R + 1):
        t = time.perf_counter(); _, n = predict(net, vol)
        if r: times.append(time.perf_counter() - t)
m = statistics.median(times)
print(f"torch {torch.__version__} vnet sliding window {D}x{H}x{W}{' channels_last_3d' if CL else ''}: {n} windows, "
      f"median {m:.2f} s/volume ({n / m:.2f} windows/s), peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
