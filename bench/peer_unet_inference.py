"""Peer for 2D inference: the standard 2D SSMIS UNet of ../shared/bench/peer_mt.py (its definition, read from that
file) in eval mode without autograd, on batches of 16 slices, as `semiseg bench` measures its inference throughput.
Prints the best seconds per batch (forward and argmax, as `semiseg bench`) over REPS after one warm-up, and slices/s.
Usage: peer_unet_inference.py [size] [reps] [cl]   (defaults: 256 5; cl: channels_last)"""
import os, sys, time
a = sys.argv[1:]
S = int(a[0]) if len(a) > 0 else 256
R = int(a[1]) if len(a) > 1 else 5
WANT_CL = len(a) > 2 and a[2] == 'cl'    # (peer_mt.py's definitions below set their own CL from its argv)
here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, 'peer_mt.py')).read()
sys.argv = ['peer_mt.py', str(S), '2', '1']          # the definitions only: everything before the loss and the loop
exec(src.split('def dice_loss')[0])
fmt = torch.channels_last if WANT_CL else torch.contiguous_format
net = UNet().to(memory_format=fmt).eval()
x = torch.randn(16, 1, S, S).contiguous(memory_format=fmt)
times = []
with torch.no_grad():
    for r in range(R + 1):
        t = time.perf_counter(); net(x).argmax(1)
        if r: times.append(time.perf_counter() - t)
m = min(times)
print(f"torch {torch.__version__} unet inference {S}x{S} batch 16{' channels_last' if WANT_CL else ''}: best {m:.4f} s/batch = {16 / m:.1f} slices/s")
