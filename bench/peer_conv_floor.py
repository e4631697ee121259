"""The convolutions of one Mean-Teacher iteration of the standard 2D UNet (../shared/bench/peer_mt.py's network) alone,
in PyTorch: conv2d forward and backward (weight, bias and, past the first layer, input gradients) over the student's
B images and forward without autograd over the teacher's B/2, on random tensors of the iteration's shapes, nothing
else. The same list and measurement as SemiSeg's `bench` line "its convolutions alone" (Benchmark.UNetConvolutions /
ConvolutionFloorSeconds), so the two libtorch builds' convolution time can be compared with nothing else in it.
Usage: peer_conv_floor.py [size] [batch] [reps] [cl]; THREADS env (default 2). Prints the median seconds."""
import os, sys, time, statistics, torch, torch.nn.functional as F
torch.set_num_threads(int(os.environ.get("THREADS", "2"))); torch.manual_seed(0)
S = int(sys.argv[1]) if len(sys.argv) > 1 else 96
B = int(sys.argv[2]) if len(sys.argv) > 2 else 8
R = int(sys.argv[3]) if len(sys.argv) > 3 else 5
CL = len(sys.argv) > 4 and sys.argv[4] == 'cl'
MF = torch.channels_last if CL else torch.contiguous_format
f, ncls = (16, 32, 64, 128, 256), 4
side = [S >> i for i in range(5)]
# (in, out, kernel, side, input needs a gradient), in forward order, as UNet2D / peer_mt.py's UNet run them
L = [(1, f[0], 3, side[0], False), (f[0], f[0], 3, side[0], True)]
for i in range(1, 5): L += [(f[i - 1], f[i], 3, side[i], True), (f[i], f[i], 3, side[i], True)]
for i in range(4, 0, -1): L += [(f[i], f[i - 1], 1, side[i], True), (2 * f[i - 1], f[i - 1], 3, side[i - 1], True), (f[i - 1], f[i - 1], 3, side[i - 1], True)]
L.append((f[0], ncls, 3, side[0], True))
# inputs, output gradients and teacher inputs are views of three random buffers sized for the largest layer, laid out
# as the iteration's (channels_last is (N, H, W, C) in memory), as SemiSeg's measurement does
def buf(count): return torch.randn(max(count(l) for l in L))
bx, bg, bt = buf(lambda l: B * l[0] * l[3] ** 2), buf(lambda l: B * l[1] * l[3] ** 2), buf(lambda l: B // 2 * l[0] * l[3] ** 2)
def view(b, n, c, s):
    return b[:n * c * s * s].view(n, s, s, c).permute(0, 3, 1, 2) if CL else b[:n * c * s * s].view(n, c, s, s)
W = [(torch.randn(o, i, k, k).contiguous(memory_format=MF).requires_grad_(), torch.randn(o).requires_grad_()) for i, o, k, s, g in L]
X = [view(bx, B, i, s).detach().requires_grad_(g) for i, o, k, s, g in L]
G = [view(bg, B, o, s) for i, o, k, s, g in L]
XT = [view(bt, B // 2, i, s) for i, o, k, s, g in L]
times = []
for r in range(R + 1):
    t = time.perf_counter()
    for (i, o, k, s, g), (w, b), x, gy, xt in zip(L, W, X, G, XT):
        y = F.conv2d(x, w, b, padding=k // 2)
        torch.autograd.grad([y], [x, w, b] if g else [w, b], [gy])
        with torch.no_grad(): F.conv2d(xt, w, b, padding=k // 2)
    if r: times.append(time.perf_counter() - t)
flops = sum(2.0 * i * o * k * k * s * s for i, o, k, s, g in L) * (3 * B + B // 2)
m = statistics.median(times)
print(f"torch {torch.__version__} size {S} batch {B}{' channels_last' if CL else ''}: convolutions alone median {m:.3f} s/iter, {flops / m / 1e9:.1f} GFLOP/s")
