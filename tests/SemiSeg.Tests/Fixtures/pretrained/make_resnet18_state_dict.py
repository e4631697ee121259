"""Writes resnet18_state_dict.pth: a state dict with exactly torchvision's resnet18 keys and shapes (torchvision is not
installed with Debian's python3-torch, so the network is rebuilt from torch.nn modules under torchvision's names),
saved with torch.save(model.state_dict(), ...) as a user would save torchvision.models.resnet18(weights=...), then
re-zipped with deflate so the fixture stays small. Weights are periodic (period 17, coprime to every channel count,
so a transposed or permuted tensor shows) and therefore compress. Also writes resnet18_expected.json: the encoder's
layer4 output (eval mode) for a fixed gray image repeated to RGB, which SemiSeg's ResNetUNet2D must reproduce.
Run with /usr/bin/python3 (torch 1.13)."""
import json, zipfile, os, math
import torch
import torch.nn as nn

torch.manual_seed(0)

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None
    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)

class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False); self.bn1 = nn.BatchNorm2d(64); self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        def layer(cin, cout, stride): return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))
        self.layer1 = layer(64, 64, 1); self.layer2 = layer(64, 128, 2); self.layer3 = layer(128, 256, 2); self.layer4 = layer(256, 512, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1); self.fc = nn.Linear(512, 1000)
    def encode(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

def periodic(shape, scale):
    n = math.prod(shape)
    base = torch.rand(17) * 2 - 1
    return (base[torch.arange(n) % 17] * scale).reshape(shape)

net = ResNet18()
with torch.no_grad():
    for name, t in net.state_dict().items():
        if name.endswith("num_batches_tracked"): t.fill_(7); continue
        if t.dim() == 4: t.copy_(periodic(t.shape, math.sqrt(3.0 / (t.shape[1] * t.shape[2] * t.shape[3]))))
        elif name.endswith("running_var"): t.copy_(1 + 0.2 * periodic(t.shape, 1).abs())
        elif name.endswith("running_mean"): t.copy_(0.05 * periodic(t.shape, 1))
        elif name.startswith("fc."): t.copy_(periodic(t.shape, 0.01))
        elif name.endswith("weight"): t.copy_(1 + 0.1 * periodic(t.shape, 1))
        else: t.copy_(0.1 * periodic(t.shape, 1))
net.eval()
here = os.path.dirname(os.path.abspath(__file__))
raw = os.path.join(here, "resnet18_raw.pth")
torch.save(net.state_dict(), raw)
out = os.path.join(here, "resnet18_state_dict.pth")
with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
    for item in src.infolist():
        dst.writestr(item.filename, src.read(item.filename))
os.remove(raw)
assert set(torch.load(out).keys()) == set(net.state_dict().keys())

gray = torch.randn(1, 1, 64, 64)
with torch.no_grad():
    f = net.encode(gray.expand(-1, 3, -1, -1))
json.dump({
    "keys": len(net.state_dict()), "fc_keys": 2,
    "input": gray.flatten().tolist(), "input_shape": list(gray.shape),
    "bottleneck_shape": list(f.shape), "bottleneck_first": f.flatten()[:64].tolist(),
    "bottleneck_sum": float(f.sum()), "bottleneck_abs_sum": float(f.abs().sum()),
    "conv1_first": net.conv1.weight.flatten()[:20].tolist(),
}, open(os.path.join(here, "resnet18_expected.json"), "w"))
print(out, os.path.getsize(out), "bytes;", len(net.state_dict()), "tensors; bottleneck", list(f.shape), float(f.abs().sum()))
