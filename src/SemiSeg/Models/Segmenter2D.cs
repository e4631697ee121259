using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>The 2D networks `train --network` can name; every 2D method trains any of them.</summary>
public enum Net2DKind
{
    /// <summary>The SSL4MIS UNet (<see cref="UNet2D"/>), every 2D method's default.</summary>
    Unet,
    /// <summary>UNet with a ResNet encoder of the UNet's widths (<see cref="ResUNet2D"/>), C3S3's and MEDL's partner.</summary>
    Resunet,
    /// <summary>TorchVision's ResNet-18 as the encoder of a UNet decoder (<see cref="ResNetUNet2D"/>); ImageNet weights load.</summary>
    Resnet18Unet,
    /// <summary>TorchVision's ResNet-34 as the encoder of a UNet decoder (<see cref="ResNetUNet2D"/>); ImageNet weights load.</summary>
    Resnet34Unet,
}

/// <summary>Encoder features of one forward pass: five scales, shallow to deep (the last is the bottleneck).</summary>
public sealed class EncoderFeatures : IDisposable
{
    public EncoderFeatures(Tensor[] scales) => Scales = scales;
    public Tensor[] Scales { get; }
    public Tensor Bottleneck => Scales[^1];
    public void Dispose() { foreach (var t in Scales) t.Dispose(); }
}

/// <summary>
/// What a 2D method needs of its network: logits for (B, C, H, W) images, and, from the same pass, the five encoder
/// scales (<see cref="Encode"/>), the decoder (<see cref="Decode"/>, keeping its last map before the pixel classifier
/// <see cref="OutputConv"/>). Methods, trainer, inference and checkpoints are typed on this, so a new 2D network is one
/// class deriving from it plus one <see cref="Net2DKind"/> and one line in <see cref="Create"/>.
/// </summary>
public abstract class Segmenter2D : Module<Tensor, Tensor>
{
    protected Segmenter2D(string name, UNetConfig config) : base(name) => Config = config;

    /// <summary>Kind, input channels, classes (and the UNet widths): stored in every checkpoint to rebuild the network.</summary>
    public UNetConfig Config { get; }

    /// <summary>The output convolution (the pixel classifier over the last decoder map).</summary>
    public abstract Conv2d OutputConv { get; }

    /// <summary>Channels of the bottleneck (<see cref="EncoderFeatures.Bottleneck"/>).</summary>
    public abstract long BottleneckChannels { get; }

    /// <summary>Parameter-name prefixes of the encoder (what `--init-encoder` copies).</summary>
    public abstract IReadOnlyList<string> EncoderPrefixes { get; }

    public EncoderFeatures Encode(Tensor x)
    {
        EncodeObserver?.Invoke(x);
        return EncodeCore(x);
    }

    /// <summary>The network's encoder (what <see cref="Encode"/> runs).</summary>
    protected abstract EncoderFeatures EncodeCore(Tensor x);

    /// <summary>Called with the input at the start of every <see cref="Encode"/> (the benchmark counts encoder passes
    /// with it, since methods call Encode and Decode separately); null in training.</summary>
    public Action<Tensor>? EncodeObserver { get; set; }

    /// <summary>Decodes encoder features; <paramref name="decoderFeatures"/> receives the last decoder map (before the
    /// output conv) when asked for, otherwise it is disposed.</summary>
    public abstract Tensor Decode(EncoderFeatures enc, out Tensor? decoderFeatures, bool keepDecoderFeatures = false);

    /// <summary>The UNet up path over five encoder scales: ups[0](s4, s3), ups[1](·, s2), ... (intermediate maps
    /// disposed); returns the last map.</summary>
    protected static Tensor UpPath(ModuleList<UpBlock> ups, Tensor[] s)
    {
        var d = ups[0].forward(s[4], s[3]);
        for (int i = 1; i < 4; i++)
        {
            var nd = ups[i].forward(d, s[3 - i]);
            d.Dispose();
            d = nd;
        }
        return d;
    }

    /// <summary>The pixel classifier (<see cref="OutputConv"/>, 3×3) over the last decoder map, which goes to
    /// <paramref name="decoderFeatures"/> when kept and is disposed otherwise.</summary>
    protected Tensor Classify(Tensor last, out Tensor? decoderFeatures, bool keepDecoderFeatures)
    {
        var logits = NarrowOutputs.Forward(OutputConv, last, padding: 1);
        if (keepDecoderFeatures) decoderFeatures = last;
        else { last.Dispose(); decoderFeatures = null; }
        return logits;
    }

    public override Tensor forward(Tensor x)
    {
        using var enc = Encode(x);
        return Decode(enc, out _);
    }

    /// <summary>One pass returning the logits, the bottleneck (high-level) and the last decoder map before the output
    /// conv (low-level): the features M3HL, ACTION, C3S3 and TransMedSeg compare, without a second pass.</summary>
    public (Tensor logits, Tensor bottleneck, Tensor decoderFeatures) ForwardWithFeatures(Tensor x)
    {
        var enc = Encode(x);
        var logits = Decode(enc, out var low, keepDecoderFeatures: true);
        for (int i = 0; i < enc.Scales.Length - 1; i++) enc.Scales[i].Dispose();
        return (logits, enc.Bottleneck, low!);
    }

    /// <summary>
    /// UniMatch's need_fp pass: one encoder pass, then the decoder on [features, Dropout2d(p)(features)] at every
    /// scale, returning the clean and the feature-perturbed logits.
    /// </summary>
    public (Tensor clean, Tensor perturbed) ForwardWithFeaturePerturbation(Tensor x, double p = 0.5)
    {
        using var scope = NewDisposeScope();
        using var enc = Encode(x);
        using var both = new EncoderFeatures(enc.Scales.Select(f => cat(new[] { f, functional.dropout2d(f, p, training: true) }, 0)).ToArray());
        var logits = Decode(both, out _);
        long n = x.shape[0];
        return (logits.narrow(0, 0, n).MoveToOuterDisposeScope(), logits.narrow(0, n, n).MoveToOuterDisposeScope());
    }

    /// <summary>The side lengths a training patch must be a multiple of (the encoder's total downsampling).</summary>
    public static int SizeMultiple(Net2DKind kind) => kind is Net2DKind.Resnet18Unet or Net2DKind.Resnet34Unet ? 32 : 16;

    /// <summary>The network <paramref name="config"/> names, freshly initialised.</summary>
    public static Segmenter2D Create(UNetConfig config) => config.Kind switch
    {
        Net2DKind.Unet => new UNet2D(config),
        Net2DKind.Resunet => new ResUNet2D(config),
        Net2DKind.Resnet18Unet => new ResNetUNet2D(config, depth: 18),
        Net2DKind.Resnet34Unet => new ResNetUNet2D(config, depth: 34),
        _ => throw new ArgumentOutOfRangeException(nameof(config), $"unknown 2D network kind {config.Kind}"),
    };

    /// <summary>The command-line name of a kind (as `--network` and config.json spell it).</summary>
    public static string Name(Net2DKind kind) => kind switch
    {
        Net2DKind.Unet => "unet", Net2DKind.Resunet => "resunet", Net2DKind.Resnet18Unet => "resnet18-unet", Net2DKind.Resnet34Unet => "resnet34-unet",
        _ => kind.ToString().ToLowerInvariant(),
    };

    public static bool TryParse(string name, out Net2DKind kind)
    {
        foreach (var k in Enum.GetValues<Net2DKind>())
            if (string.Equals(Name(k), name, StringComparison.OrdinalIgnoreCase)) { kind = k; return true; }
        kind = default;
        return false;
    }
}
