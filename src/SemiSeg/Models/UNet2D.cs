using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

public enum UpMode
{
    /// <summary>1x1 conv then bilinear x2 (align_corners=True): the network SSL4MIS, ABD, UniMatch, ACTION, BCP, SS-Net,
    /// MC-Net and M3HL actually run (SSL4MIS's Decoder never passes its bilinear flag to UpBlock, whose default is
    /// bilinear=True; 1,813,764 parameters at 4 classes).</summary>
    Bilinear,
    /// <summary>ConvTranspose2d(k=2, s=2): what SSL4MIS's dead 'bilinear': False parameter would select; no reference's
    /// default (130 560 more parameters than the bilinear network).</summary>
    Transpose,
}

/// <summary>The 2D network's configuration (kind, channels, classes, UNet widths), stored inside every checkpoint so a
/// checkpoint alone rebuilds its network; a 3D checkpoint keeps its channels and classes here.</summary>
public sealed record UNetConfig
{
    public int InChannels { get; init; } = 1;
    public int NumClasses { get; init; } = 4;
    public int[] Features { get; init; } = { 16, 32, 64, 128, 256 };
    public double[] Dropout { get; init; } = { 0.05, 0.1, 0.2, 0.3, 0.5 };
    public UpMode Up { get; init; } = UpMode.Bilinear;
    /// <summary>Which 2D network (UNet by default); the widths and dropout rates above are the UNet's.</summary>
    public Net2DKind Kind { get; init; } = Net2DKind.Unet;
    /// <summary>LeakyReLU in place on the BN output (saves a tensor and a memory pass per block; same values and
    /// gradients, since BN's backward needs its input, not its output).</summary>
    public bool InplaceActivations { get; init; } = true;
}

/// <summary>conv3x3 → BN → LeakyReLU → Dropout(p) → conv3x3 → BN → LeakyReLU (SSL4MIS ConvBlock).</summary>
public sealed class ConvBlock : Module<Tensor, Tensor>
{
    readonly Sequential conv;
    public ConvBlock(long cin, long cout, double p, bool inplace = false) : base(nameof(ConvBlock))
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>
        {
            ("0", Conv2d(cin, cout, 3, padding: 1)), ("1", Norms.BatchNorm2d(cout)), ("2", new StableLeakyReLU(0.01, inplace)),
        };
        layers.Add(("3", p > 0 ? new ParallelDropout(p) : Identity()));
        layers.AddRange(new (string, Module<Tensor, Tensor>)[] { ("4", Conv2d(cout, cout, 3, padding: 1)), ("5", Norms.BatchNorm2d(cout)), ("6", new StableLeakyReLU(0.01, inplace)) });
        conv = Sequential(layers);
        RegisterComponents();
    }
    public override Tensor forward(Tensor x) => conv.forward(x);
}

/// <summary>Decoder step: upsample the deeper map to the skip's width, concatenate [skip, up], ConvBlock.</summary>
public sealed class UpBlock : Module<Tensor, Tensor, Tensor>
{
    readonly Module<Tensor, Tensor> up;
    readonly ConvBlock conv;
    readonly bool bilinear;
    readonly Scalar one = 1.0.ToScalar();   // owned, as StableLeakyReLU's slope (a temporary could be finalized mid-call)
    public UpBlock(long cDeep, long cSkip, long cout, UpMode mode, bool inplace = false) : base(nameof(UpBlock))
    {
        bilinear = mode == UpMode.Bilinear;
        up = bilinear ? Conv2d(cDeep, cSkip, 1) : ConvTranspose2d(cDeep, cSkip, 2, stride: 2);
        conv = new ConvBlock(cSkip * 2, cout, 0.0, inplace);
        RegisterComponents();
    }
    public override Tensor forward(Tensor deep, Tensor skip)
    {
        using var scope = NewDisposeScope();
        var u = up.forward(deep);
        if (bilinear)
        {
            u = functional.interpolate(u, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Bilinear, align_corners: true);
            // The cat's backward hands this branch a channel slice of a channels_last gradient, dense in neither
            // layout, and libtorch's bilinear backward then takes its generic path (the gradient copied to NCHW,
            // scattered there, the result copied back): 8.2 ms of the four blocks' backward at 96x96 batch 8, 2.8 ms
            // with this multiplication by one, an elementwise node whose backward returns the gradient dense in
            // channels_last for the fast kernel. x·1 = x exactly; only the bilinear backward's summation order changes.
            if (u.requires_grad) u = u.mul(one);
        }
        return conv.forward(cat(new[] { skip, u }, 1)).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) one.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// The standard SSMIS 2D UNet (SSL4MIS networks/unet.py): widths 16-32-64-128-256, encoder dropout
/// 0.05/0.1/0.2/0.3/0.5, four max-pool downsamplings, decoder without dropout, 3x3 output conv. Both up-path variants.
/// <see cref="Encode"/> / <see cref="Decode"/> expose the bottleneck and the last decoder features for methods that need
/// them (feature perturbation, feature consistency) without a second forward pass.
/// </summary>
public sealed class UNet2D : Segmenter2D
{
    readonly ConvBlock inConv;
    readonly ModuleList<Sequential> down;
    readonly ModuleList<UpBlock> ups;
    readonly Conv2d outConv;

    public UNet2D(UNetConfig config) : base(nameof(UNet2D), config)
    {
        var f = config.Features; var d = config.Dropout;
        if (f.Length != 5 || d.Length != 5) throw new ArgumentException("UNet2D needs 5 feature widths and 5 dropout rates");
        bool ip = config.InplaceActivations;
        inConv = new ConvBlock(config.InChannels, f[0], d[0], ip);
        down = new ModuleList<Sequential>();
        for (int i = 1; i < 5; i++) down.Add(Sequential(("pool", MaxPool2d(2)), ("conv", new ConvBlock(f[i - 1], f[i], d[i], ip))));
        ups = new ModuleList<UpBlock>();
        for (int i = 4; i >= 1; i--) ups.Add(new UpBlock(f[i], f[i - 1], f[i - 1], config.Up, ip));
        outConv = Conv2d(f[0], config.NumClasses, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>The 3×3 output convolution (the pixel classifier over the last decoder map).</summary>
    public override Conv2d OutputConv => outConv;

    public override long BottleneckChannels => Config.Features[4];

    public override IReadOnlyList<string> EncoderPrefixes { get; } = new[] { "inConv.", "down." };

    protected override EncoderFeatures EncodeCore(Tensor x)
    {
        var scales = new Tensor[5];
        scales[0] = inConv.forward(x);
        for (int i = 1; i < 5; i++) scales[i] = down[i - 1].forward(scales[i - 1]);
        return new EncoderFeatures(scales);
    }

    public override Tensor Decode(EncoderFeatures enc, out Tensor? decoderFeatures, bool keepDecoderFeatures = false)
    {
        return Classify(UpPath(ups, enc.Scales), out decoderFeatures, keepDecoderFeatures);
    }
}
