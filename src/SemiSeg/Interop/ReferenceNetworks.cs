using System.Text.RegularExpressions;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Interop;

/// <summary>The reference network a PyTorch state dict holds, under the reference code's parameter names.</summary>
public enum ReferenceKind
{
    /// <summary>SSL4MIS networks/unet.py <c>UNet</c> (encoder.in_conv ... decoder.out_conv), both up paths.</summary>
    Ssl4misUNet,
    /// <summary>UA-MT networks/vnet.py <c>VNet(normalization='batchnorm')</c> (block_one ... out_conv).</summary>
    UamtVNet,
}

/// <summary>
/// A network as the reference code builds it, with what SemiSeg needs to build the same network: the kind, input
/// channels, class count and widths (UNet: five widths and the up path; VNet: base filters). Everything here is
/// read from a state dict's names and shapes, so a reference file needs no side information.
/// </summary>
public sealed record ReferenceArchitecture(ReferenceKind Kind, int InChannels, int NumClasses, int[] Features, UpMode Up = UpMode.Bilinear)
{
    public int Filters => Features[0];

    public string Describe() => Kind switch
    {
        ReferenceKind.Ssl4misUNet => $"SSL4MIS UNet ({(Up == UpMode.Bilinear ? "1x1 conv + bilinear" : "transposed-convolution")} up path, widths {string.Join("-", Features)}, {InChannels} input channel(s), {NumClasses} classes)",
        _ => $"UA-MT VNet ({Filters} filters, batchnorm, {InChannels} input channel(s), {NumClasses} classes)",
    };

    /// <summary>The UNet configuration SemiSeg builds (dropout rates: SSL4MIS's, which a state dict does not record).</summary>
    public UNetConfig UNet => new() { InChannels = InChannels, NumClasses = NumClasses, Features = (int[])Features.Clone(), Up = Up };

    /// <summary>The 3D network configuration (VNet with the semi-supervised scripts' has_dropout=True; dropout is
    /// off in evaluation, so it does not change inference).</summary>
    public Net3DConfig? Network3D => Kind == ReferenceKind.UamtVNet ? new Net3DConfig { Kind = Net3DKind.Vnet, Filters = Filters } : null;

    public nn.Module<Tensor, Tensor> CreateNetwork() =>
        Kind == ReferenceKind.UamtVNet ? new VNet(InChannels, NumClasses, Filters) : new UNet2D(UNet);

    /// <summary>The reference architecture of a SemiSeg network; networks without a reference are refused by name.</summary>
    public static ReferenceArchitecture Of(nn.Module net) => net switch
    {
        UNet2D u => new(ReferenceKind.Ssl4misUNet, u.Config.InChannels, u.Config.NumClasses, (int[])u.Config.Features.Clone(), u.Config.Up),
        VNet v => new(ReferenceKind.UamtVNet, InputChannels(v), v.NumClasses, Enumerable.Range(0, 5).Select(i => VNetFilters(v) << i).ToArray()),
        _ => throw new NotSupportedException(Unsupported(net)),
    };

    internal static string Unsupported(nn.Module net) => net switch
    {
        UNet3D => "the 3D UNet has no reference implementation with a fixed parameter layout to export to (SemiSeg's own design); PyTorch/ONNX interop covers the 2D UNet (SSL4MIS) and the VNet (UA-MT)",
        ResUNet2D => "ResUNet2D (the ResNet-encoder partner network of C3S3/MEDL) has no reference parameter layout in SemiSeg; PyTorch/ONNX interop covers the 2D UNet (SSL4MIS) and the VNet (UA-MT)",
        _ => $"{net.GetName()} has no reference parameter layout; PyTorch/ONNX interop covers the 2D UNet (SSL4MIS) and the VNet (UA-MT)",
    };

    static int InputChannels(VNet v) => (int)v.state_dict()["enc.0.body.conv0.weight"].shape[1];
    static int VNetFilters(VNet v) => (int)v.state_dict()["enc.0.body.conv0.weight"].shape[0];
}

/// <summary>
/// SemiSeg's state-dict names ↔ the reference code's, for the two networks with a reference layout:
/// <list type="bullet">
/// <item>2D UNet ↔ SSL4MIS networks/unet.py: <c>inConv.conv.K</c> ↔ <c>encoder.in_conv.conv_conv.K</c>,
/// <c>down.I.conv.conv.K</c> ↔ <c>encoder.down{I+1}.maxpool_conv.1.conv_conv.K</c>, <c>ups.I.up</c> ↔
/// <c>decoder.up{I+1}.conv1x1</c> (bilinear) or <c>decoder.up{I+1}.up</c> (ConvTranspose2d),
/// <c>ups.I.conv.conv.K</c> ↔ <c>decoder.up{I+1}.conv.conv_conv.K</c>, <c>outConv</c> ↔ <c>decoder.out_conv</c>.</item>
/// <item>VNet ↔ UA-MT networks/vnet.py (batchnorm): encoder stage I ↔ <c>block_one..block_five</c>, its conv/bn S ↔
/// <c>.conv.{3S}</c>/<c>.conv.{3S+1}</c>; <c>down.I.0/1</c> ↔ <c>block_*_dw.conv.0/1</c>; <c>up.J.0/1</c> ↔
/// <c>block_five_up..block_eight_up.conv.0/1</c>; decoder stage J ↔ <c>block_six..block_nine</c>;
/// <c>outConv</c> ↔ <c>out_conv</c>.</item>
/// </list>
/// Module indices agree because both sides build the same layers in the same order (the dropout in SSL4MIS's
/// ConvBlock is index 3 on both sides and holds no parameters).
/// </summary>
public static class ReferenceNames
{
    static readonly string[] VBlocks = { "block_one", "block_two", "block_three", "block_four", "block_five" };
    static readonly string[] VUps = { "block_five_up", "block_six_up", "block_seven_up", "block_eight_up" };
    static readonly string[] VDecs = { "block_six", "block_seven", "block_eight", "block_nine" };

    /// <summary>The reference name of one SemiSeg state-dict entry, or null when the network has no such name.</summary>
    public static string? ToReference(ReferenceArchitecture arch, string name)
    {
        Match m;
        if (arch.Kind == ReferenceKind.Ssl4misUNet)
        {
            if ((m = Regex.Match(name, @"^inConv\.conv\.(\d+)\.(\w+)$")).Success) return $"encoder.in_conv.conv_conv.{m.Groups[1]}.{m.Groups[2]}";
            if ((m = Regex.Match(name, @"^down\.(\d)\.conv\.conv\.(\d+)\.(\w+)$")).Success) return $"encoder.down{int.Parse(m.Groups[1].Value) + 1}.maxpool_conv.1.conv_conv.{m.Groups[2]}.{m.Groups[3]}";
            if ((m = Regex.Match(name, @"^ups\.(\d)\.up\.(\w+)$")).Success) return $"decoder.up{int.Parse(m.Groups[1].Value) + 1}.{(arch.Up == UpMode.Bilinear ? "conv1x1" : "up")}.{m.Groups[2]}";
            if ((m = Regex.Match(name, @"^ups\.(\d)\.conv\.conv\.(\d+)\.(\w+)$")).Success) return $"decoder.up{int.Parse(m.Groups[1].Value) + 1}.conv.conv_conv.{m.Groups[2]}.{m.Groups[3]}";
            if ((m = Regex.Match(name, @"^outConv\.(\w+)$")).Success) return $"decoder.out_conv.{m.Groups[1]}";
            return null;
        }
        static string Stage(string block, Match mm) => $"{block}.conv.{3 * int.Parse(mm.Groups[3].Value) + (mm.Groups[2].Value == "bn" ? 1 : 0)}.{mm.Groups[4]}";
        if ((m = Regex.Match(name, @"^enc\.(\d)\.body\.(conv|bn)(\d+)\.(\w+)$")).Success) return Stage(VBlocks[int.Parse(m.Groups[1].Value)], m);
        if ((m = Regex.Match(name, @"^dec\.(\d)\.body\.(conv|bn)(\d+)\.(\w+)$")).Success) return Stage(VDecs[int.Parse(m.Groups[1].Value)], m);
        if ((m = Regex.Match(name, @"^down\.(\d)\.([01])\.(\w+)$")).Success) return $"{VBlocks[int.Parse(m.Groups[1].Value)]}_dw.conv.{m.Groups[2]}.{m.Groups[3]}";
        if ((m = Regex.Match(name, @"^up\.(\d)\.([01])\.(\w+)$")).Success) return $"{VUps[int.Parse(m.Groups[1].Value)]}.conv.{m.Groups[2]}.{m.Groups[3]}";
        if ((m = Regex.Match(name, @"^outConv\.(\w+)$")).Success) return $"out_conv.{m.Groups[1]}";
        return null;
    }

    /// <summary>SemiSeg name → reference name for every state-dict entry of <paramref name="net"/>, in the network's
    /// order; throws if an entry has no reference name (a network change this map does not know).</summary>
    public static List<(string semiseg, string reference)> Map(nn.Module net, ReferenceArchitecture arch)
    {
        var list = new List<(string, string)>();
        foreach (var name in net.state_dict().Keys)
            list.Add((name, ToReference(arch, name) ?? throw new InvalidOperationException($"{net.GetName()} parameter '{name}' has no reference name (the name map is out of date)")));
        if (list.Select(p => p.Item2).Distinct().Count() != list.Count) throw new InvalidOperationException("two parameters map to the same reference name");
        return list;
    }

    /// <summary>
    /// The reference architecture a state dict (reference names) holds, read from its names and shapes: the network
    /// kind from the names (encoder.* = SSL4MIS UNet, block_one.* = UA-MT VNet), the up path from conv1x1 vs up,
    /// input channels, widths and class count from the first and last convolutions' shapes.
    /// </summary>
    public static ReferenceArchitecture Infer(IReadOnlyDictionary<string, Tensor> sd, string file)
    {
        long[] Shape(string key) => sd.TryGetValue(key, out var t) ? t.shape
            : throw new InvalidDataException($"'{file}': a {(key.StartsWith("encoder") || key.StartsWith("decoder") ? "SSL4MIS UNet" : "UA-MT VNet")} state dict needs '{key}', which it lacks");
        if (sd.Keys.Any(k => k.StartsWith("encoder.in_conv.")))
        {
            var w0 = Shape("encoder.in_conv.conv_conv.0.weight");
            var widths = new[] { (int)w0[0] }.Concat(Enumerable.Range(1, 4).Select(i => (int)Shape($"encoder.down{i}.maxpool_conv.1.conv_conv.0.weight")[0])).ToArray();
            bool bilinear = sd.ContainsKey("decoder.up1.conv1x1.weight");
            if (!bilinear && !sd.ContainsKey("decoder.up1.up.weight"))
                throw new InvalidDataException($"'{file}': an SSL4MIS UNet state dict without decoder.up1.conv1x1 (bilinear) or decoder.up1.up (transposed convolution)");
            if (w0.Length != 4) throw new InvalidDataException($"'{file}': encoder.in_conv.conv_conv.0.weight has shape [{string.Join(",", w0)}]; a 2D UNet's is 4-dimensional");
            return new(ReferenceKind.Ssl4misUNet, (int)w0[1], (int)Shape("decoder.out_conv.weight")[0], widths, bilinear ? UpMode.Bilinear : UpMode.Transpose);
        }
        if (sd.Keys.Any(k => k.StartsWith("block_one.")))
        {
            var w0 = Shape("block_one.conv.0.weight");
            if (w0.Length != 5) throw new InvalidDataException($"'{file}': block_one.conv.0.weight has shape [{string.Join(",", w0)}]; a VNet's is 5-dimensional");
            if (!sd.ContainsKey("block_one.conv.1.running_mean"))
                throw new InvalidDataException($"'{file}': a VNet without BatchNorm after block_one's convolution (normalization='none', 'groupnorm' or 'instancenorm'); SemiSeg's VNet is the batchnorm one the semi-supervised scripts build");
            int f = (int)w0[0];
            return new(ReferenceKind.UamtVNet, (int)w0[1], (int)Shape("out_conv.weight")[0], Enumerable.Range(0, 5).Select(i => f << i).ToArray());
        }
        var sample = string.Join(", ", sd.Keys.OrderBy(k => k, StringComparer.Ordinal).Take(4));
        throw new InvalidDataException($"'{file}': not a state dict of a network SemiSeg knows (SSL4MIS UNet: encoder.in_conv...; UA-MT VNet: block_one...); its first keys are {sample}");
    }
}
