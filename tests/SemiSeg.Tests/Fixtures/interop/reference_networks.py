"""The reference codebases' networks, written from their description, for SemiSeg's PyTorch interop checks.

Written (not copied) from, read on 2026-12-01:
- HiLab-git/SSL4MIS code/networks/unet.py (UNet: Encoder in_conv/down1..down4, ConvBlock.conv_conv =
  Conv-BN-LeakyReLU-Dropout-Conv-BN-LeakyReLU, DownBlock.maxpool_conv = MaxPool2d(2) + ConvBlock, Decoder up1..up4,
  UpBlock: bilinear -> conv1x1 then Upsample(x2, bilinear, align_corners=True), else ConvTranspose2d(k2, s2) named
  `up`; cat([skip, up]) then ConvBlock(dropout 0); out_conv 3x3). Widths 16-32-64-128-256 by default.
- yulequan/UA-MT code/networks/vnet.py (VNet with normalization='batchnorm', as its semi-supervised scripts build it:
  block_one..block_nine ConvBlocks of 1/2/3/3/3 | 3/3/2/1 Conv3d-BN-ReLU stages in `conv`, *_dw = Conv3d(k2, s2)-BN-ReLU,
  *_up = ConvTranspose3d(k2, s2)-BN-ReLU, additive skips, Dropout3d(0.5) on x5 and x9 when has_dropout, out_conv 1x1x1).

Three uses, all with Debian's python3-torch (1.13), no other package:
  /usr/bin/python3 reference_networks.py fixtures
      writes the small fixtures the C# tests load (tests/SemiSeg.Tests/Interop/ReferenceFixtureTests.cs): a
      reference-named state dict per network (ssl4mis_unet*.pth via torch.save, the way SSL4MIS saves its models;
      uamt_vnet.safetensors) with random weights and random BatchNorm running statistics, and *_io.safetensors holding
      a fixed input and the reference network's eval-mode logits.
  /usr/bin/python3 reference_networks.py check MODEL.(pt|pth|safetensors) SAMPLE.safetensors [--network unet|vnet]
      loads a file written by `semiseg export` with load_state_dict(strict=True) into the reference class and compares
      its eval-mode logits on the sample's input with SemiSeg's logits stored in the sample (`semiseg export --sample`);
      prints the maximum |difference|.
The safetensors format (8-byte little-endian header length, JSON header, raw little-endian data) is read and written
here by hand because Debian ships no safetensors package.
"""
import json, os, struct, sys
import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- SSL4MIS UNet (networks/unet.py)
class ConvBlock(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        self.conv_conv = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(), nn.Dropout(p),
            nn.Conv2d(cout, cout, kernel_size=3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU())

    def forward(self, x):
        return self.conv_conv(x)


class DownBlock(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), ConvBlock(cin, cout, p))

    def forward(self, x):
        return self.maxpool_conv(x)


class UpBlock(nn.Module):
    def __init__(self, c1, c2, cout, p, bilinear):
        super().__init__()
        self.bilinear = bilinear
        if bilinear:
            self.conv1x1 = nn.Conv2d(c1, c2, kernel_size=1)
            self.up = nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)
        else:
            self.up = nn.ConvTranspose2d(c1, c2, kernel_size=2, stride=2)
        self.conv = ConvBlock(c2 * 2, cout, p)

    def forward(self, x1, x2):
        if self.bilinear:
            x1 = self.conv1x1(x1)
        x1 = self.up(x1)
        return self.conv(torch.cat([x2, x1], dim=1))


class Encoder(nn.Module):
    def __init__(self, cin, ft, dropout):
        super().__init__()
        self.in_conv = ConvBlock(cin, ft[0], dropout[0])
        self.down1 = DownBlock(ft[0], ft[1], dropout[1])
        self.down2 = DownBlock(ft[1], ft[2], dropout[2])
        self.down3 = DownBlock(ft[2], ft[3], dropout[3])
        self.down4 = DownBlock(ft[3], ft[4], dropout[4])

    def forward(self, x):
        x0 = self.in_conv(x)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        return [x0, x1, x2, x3, self.down4(x3)]


class Decoder(nn.Module):
    def __init__(self, ft, n_class, bilinear):
        super().__init__()
        self.up1 = UpBlock(ft[4], ft[3], ft[3], 0.0, bilinear)
        self.up2 = UpBlock(ft[3], ft[2], ft[2], 0.0, bilinear)
        self.up3 = UpBlock(ft[2], ft[1], ft[1], 0.0, bilinear)
        self.up4 = UpBlock(ft[1], ft[0], ft[0], 0.0, bilinear)
        self.out_conv = nn.Conv2d(ft[0], n_class, kernel_size=3, padding=1)

    def forward(self, f):
        x = self.up1(f[4], f[3])
        x = self.up2(x, f[2])
        x = self.up3(x, f[1])
        x = self.up4(x, f[0])
        return self.out_conv(x)


class UNet(nn.Module):
    def __init__(self, in_chns, class_num, feature_chns=(16, 32, 64, 128, 256), bilinear=True,
                 dropout=(0.05, 0.1, 0.2, 0.3, 0.5)):
        super().__init__()
        self.encoder = Encoder(in_chns, feature_chns, dropout)
        self.decoder = Decoder(feature_chns, class_num, bilinear)

    def forward(self, x):
        return self.decoder(self.encoder(x))


# ---------------------------------------------------------------- UA-MT VNet (networks/vnet.py, batchnorm)
class VConvBlock(nn.Module):
    def __init__(self, n_stages, cin, cout):
        super().__init__()
        ops = []
        for i in range(n_stages):
            ops += [nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
        self.conv = nn.Sequential(*ops)

    def forward(self, x):
        return self.conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(cin, cout, 2, padding=0, stride=2), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(nn.ConvTranspose3d(cin, cout, 2, padding=0, stride=2), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv(x)


class VNet(nn.Module):
    def __init__(self, n_channels=1, n_classes=2, n_filters=16, has_dropout=True):
        super().__init__()
        f = n_filters
        self.has_dropout = has_dropout
        self.block_one = VConvBlock(1, n_channels, f)
        self.block_one_dw = Down(f, 2 * f)
        self.block_two = VConvBlock(2, 2 * f, 2 * f)
        self.block_two_dw = Down(2 * f, 4 * f)
        self.block_three = VConvBlock(3, 4 * f, 4 * f)
        self.block_three_dw = Down(4 * f, 8 * f)
        self.block_four = VConvBlock(3, 8 * f, 8 * f)
        self.block_four_dw = Down(8 * f, 16 * f)
        self.block_five = VConvBlock(3, 16 * f, 16 * f)
        self.block_five_up = Up(16 * f, 8 * f)
        self.block_six = VConvBlock(3, 8 * f, 8 * f)
        self.block_six_up = Up(8 * f, 4 * f)
        self.block_seven = VConvBlock(3, 4 * f, 4 * f)
        self.block_seven_up = Up(4 * f, 2 * f)
        self.block_eight = VConvBlock(2, 2 * f, 2 * f)
        self.block_eight_up = Up(2 * f, f)
        self.block_nine = VConvBlock(1, f, f)
        self.out_conv = nn.Conv3d(f, n_classes, 1, padding=0)
        self.dropout = nn.Dropout3d(p=0.5, inplace=False)

    def forward(self, x):
        x1 = self.block_one(x)
        x2 = self.block_two(self.block_one_dw(x1))
        x3 = self.block_three(self.block_two_dw(x2))
        x4 = self.block_four(self.block_three_dw(x3))
        x5 = self.block_five(self.block_four_dw(x4))
        if self.has_dropout:
            x5 = self.dropout(x5)
        x6 = self.block_six(self.block_five_up(x5) + x4)
        x7 = self.block_seven(self.block_six_up(x6) + x3)
        x8 = self.block_eight(self.block_seven_up(x7) + x2)
        x9 = self.block_nine(self.block_eight_up(x8) + x1)
        if self.has_dropout:
            x9 = self.dropout(x9)
        return self.out_conv(x9)


# ---------------------------------------------------------------- safetensors by hand
DTYPES = {'F32': (np.float32, torch.float32), 'F64': (np.float64, torch.float64), 'I64': (np.int64, torch.int64)}


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().contiguous().numpy()
        code = {np.dtype(np.float32): 'F32', np.dtype(np.float64): 'F64', np.dtype(np.int64): 'I64'}[a.dtype]
        b = a.astype(a.dtype.newbyteorder('<')).tobytes()
        header[name] = {'dtype': code, 'shape': list(a.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        npt, _ = DTYPES[e['dtype']]
        b, end = e['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(data[b:end], dtype=np.dtype(npt).newbyteorder('<')).astype(npt).reshape(e['shape']).copy())
    return out


def load_state_dict_file(path):
    if path.endswith('.safetensors'):
        return load_safetensors(path)
    return torch.load(path, map_location='cpu')


# ---------------------------------------------------------------- fixtures
def randomise(net, gen):
    """Random weights, BatchNorm affine parameters and running statistics (running_var in [0.5, 1.5]), so eval-mode
    BatchNorm is not the identity and a swapped mean/var or weight/bias would show."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, nn.modules.conv._ConvNd):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / m.weight[0].numel()) ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def fixtures():
    gen = torch.Generator().manual_seed(23)
    cases = [
        ('ssl4mis_unet', UNet(1, 3, (4, 8, 16, 32, 64), bilinear=True), (2, 1, 32, 48), 'pth'),
        ('ssl4mis_unet_transpose', UNet(2, 2, (4, 8, 16, 32, 64), bilinear=False), (1, 2, 32, 32), 'pth'),
        ('uamt_vnet', VNet(1, 2, n_filters=2, has_dropout=True), (1, 1, 16, 32, 32), 'safetensors'),
    ]
    for name, net, shape, fmt in cases:
        randomise(net, gen)
        net.eval()
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            y = net(x)
        sd = net.state_dict()
        if fmt == 'pth':
            torch.save(sd, os.path.join(HERE, name + '.pth'))
        else:
            save_safetensors(os.path.join(HERE, name + '.safetensors'), dict(sd))
        save_safetensors(os.path.join(HERE, name + '_io.safetensors'), {'input': x, 'logits': y})
        print(f'{name}: {sum(p.numel() for p in net.parameters())} parameters, logits {tuple(y.shape)}, |y| max {y.abs().max():.3f}')


# ---------------------------------------------------------------- checking SemiSeg's exports
def build_for(sd, network):
    if network == 'unet' or (network is None and 'encoder.in_conv.conv_conv.0.weight' in sd):
        w0 = sd['encoder.in_conv.conv_conv.0.weight']
        ft = [sd['encoder.in_conv.conv_conv.0.weight'].shape[0]] + [sd[f'encoder.down{i}.maxpool_conv.1.conv_conv.0.weight'].shape[0] for i in range(1, 5)]
        bilinear = 'decoder.up1.conv1x1.weight' in sd
        return UNet(w0.shape[1], sd['decoder.out_conv.weight'].shape[0], tuple(ft), bilinear=bilinear)
    w0 = sd['block_one.conv.0.weight']
    return VNet(w0.shape[1], sd['out_conv.weight'].shape[0], n_filters=w0.shape[0])


def check(model_path, sample_path, network=None):
    sd = load_state_dict_file(model_path)
    net = build_for(sd, network)
    net.load_state_dict(sd)  # strict: every key present, none unexpected, every shape equal
    net.eval()
    sample = load_safetensors(sample_path)
    with torch.no_grad():
        y = net(sample['input'])
    diff = (y - sample['logits']).abs().max().item()
    print(f'{os.path.basename(model_path)}: {type(net).__name__}, {sum(p.numel() for p in net.parameters())} parameters, '
          f'input {tuple(sample["input"].shape)}, max |PyTorch - SemiSeg| = {diff:.3g}')
    return diff


if __name__ == '__main__':
    torch.set_num_threads(1)
    if len(sys.argv) >= 2 and sys.argv[1] == 'fixtures':
        fixtures()
    elif len(sys.argv) >= 4 and sys.argv[1] == 'check':
        net = sys.argv[sys.argv.index('--network') + 1] if '--network' in sys.argv else None
        d = check(sys.argv[2], sys.argv[3], net)
        sys.exit(0 if d <= 1e-4 else 1)
    else:
        print(__doc__)
        sys.exit(2)
