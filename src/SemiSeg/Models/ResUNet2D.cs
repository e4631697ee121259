using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>ResNet basic block: conv3x3(stride) → BN → ReLU → conv3x3 → BN, plus the (projected) input, → ReLU.</summary>
public sealed class BasicBlock : Module<Tensor, Tensor>
{
    readonly Sequential body;
    readonly Module<Tensor, Tensor> shortcut;

    public BasicBlock(long cin, long cout, long stride = 1) : base(nameof(BasicBlock))
    {
        body = Sequential(Conv2d(cin, cout, 3, stride: stride, padding: 1, bias: false), Norms.BatchNorm2d(cout), ReLU(),
                          Conv2d(cout, cout, 3, padding: 1, bias: false), Norms.BatchNorm2d(cout));
        shortcut = stride == 1 && cin == cout ? Identity() : Sequential(Conv2d(cin, cout, 1, stride: stride, bias: false), Norms.BatchNorm2d(cout));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return functional.relu(body.forward(x) + shortcut.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A UNet with a ResNet encoder (two basic blocks per scale, strided-convolution downsampling, widths as the UNet's
/// 16..256) and the UNet's decoder: the "different architecture" partner of the UNet in C3S3 and MEDL.
/// </summary>
public sealed class ResUNet2D : Segmenter2D
{
    readonly ModuleList<Sequential> stages;
    readonly ModuleList<UpBlock> ups;
    readonly Conv2d outConv;

    public ResUNet2D(UNetConfig config) : base(nameof(ResUNet2D), config)
    {
        var f = config.Features;
        stages = new ModuleList<Sequential>();
        stages.Add(Sequential(Conv2d(config.InChannels, f[0], 3, padding: 1, bias: false), Norms.BatchNorm2d(f[0]), ReLU(), new BasicBlock(f[0], f[0])));
        for (int i = 1; i < 5; i++) stages.Add(Sequential(new BasicBlock(f[i - 1], f[i], 2), new BasicBlock(f[i], f[i])));
        ups = new ModuleList<UpBlock>();
        for (int i = 4; i >= 1; i--) ups.Add(new UpBlock(f[i], f[i - 1], f[i - 1], config.Up));
        outConv = Conv2d(f[0], config.NumClasses, 3, padding: 1);
        RegisterComponents();
    }

    public override Conv2d OutputConv => outConv;

    public override long BottleneckChannels => Config.Features[4];

    public override IReadOnlyList<string> EncoderPrefixes { get; } = new[] { "stages." };

    protected override EncoderFeatures EncodeCore(Tensor x)
    {
        var s = new Tensor[5];
        s[0] = stages[0].forward(x);
        for (int i = 1; i < 5; i++) s[i] = stages[i].forward(s[i - 1]);
        return new EncoderFeatures(s);
    }

    public override Tensor Decode(EncoderFeatures enc, out Tensor? decoderFeatures, bool keepDecoderFeatures = false)
    {
        return Classify(UpPath(ups, enc.Scales), out decoderFeatures, keepDecoderFeatures);
    }
}
