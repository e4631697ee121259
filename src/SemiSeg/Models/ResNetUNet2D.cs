using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>
/// A UNet whose encoder is TorchVision's ResNet-18 or ResNet-34 (the module TorchSharp's TorchVision builds, so its
/// parameter names are torchvision's and an ImageNet state dict saved from PyTorch loads into it, see
/// <see cref="Interop.PretrainedWeights"/>), with a UNet decoder as segmentation_models_pytorch's Unet has it: five encoder
/// scales (stem 64 at H/2, layer1 64 at H/4, layer2 128 at H/8, layer3 256 at H/16, layer4 512 at H/32), decoder
/// widths 256-128-64-32 with the UNet's up blocks, a last ×2 bilinear step and a conv block at full size (16 channels,
/// the UNet's last decoder width), 3×3 output convolution. Gray input (1 channel) is repeated to the three channels the
/// ImageNet stem expects (equivalent to summing its RGB kernels); patches must be multiples of 32. The classifier
/// (fc) of TorchVision's module is kept so the state dict loads strictly, but it never runs and trains nothing.
/// </summary>
public sealed class ResNetUNet2D : Segmenter2D
{
    readonly ResNet encoder;
    readonly ModuleList<UpBlock> ups;
    readonly ConvBlock head;
    readonly Conv2d outConv;
    // the encoder's parts, run one by one (TorchVision's forward goes on to pooling and the classifier); a dictionary,
    // not fields, so RegisterComponents does not register them a second time
    readonly Dictionary<string, Module<Tensor, Tensor>> _parts;

    public ResNetUNet2D(UNetConfig config, int depth) : base($"ResNet{depth}UNet2D", config)
    {
        if (config.InChannels is not (1 or 3))
            throw new ArgumentException($"the ResNet encoder takes 1 (gray, repeated to RGB) or 3 input channels, not {config.InChannels}");
        Func<int, Module<Tensor, Tensor>> norm = c => Norms.BatchNorm2d(c);
        encoder = depth switch
        {
            18 => torchvision.models.resnet18(norm_layer: norm),
            34 => torchvision.models.resnet34(norm_layer: norm),
            _ => throw new ArgumentException($"ResNet depth {depth}: 18 or 34"),
        };
        _parts = encoder.named_children().ToDictionary(c => c.name, c => (Module<Tensor, Tensor>)c.module);
        foreach (var p in _parts["fc"].parameters()) p.requires_grad_(false);
        long[] skip = { 64, 64, 128, 256, 512 }, dec = { 256, 128, 64, 32 };
        ups = new ModuleList<UpBlock>();
        for (int i = 0; i < 4; i++) ups.Add(new UpBlock(i == 0 ? skip[4] : dec[i - 1], skip[3 - i], dec[i], config.Up));
        head = new ConvBlock(dec[3], config.Features[0], 0.0);
        outConv = Conv2d(config.Features[0], config.NumClasses, 3, padding: 1);
        RegisterComponents();
    }

    public override Conv2d OutputConv => outConv;

    public override long BottleneckChannels => 512;

    public override IReadOnlyList<string> EncoderPrefixes { get; } = new[] { "encoder." };

    /// <summary>The TorchVision module (its state dict is torchvision's resnet state dict).</summary>
    public nn.Module Encoder => encoder;

    protected override EncoderFeatures EncodeCore(Tensor x)
    {
        var s = new Tensor[5];
        using (var scope = NewDisposeScope())
        {
            var rgb = Config.InChannels == 1 ? x.expand(-1, 3, -1, -1) : x;
            s[0] = _parts["relu"].forward(_parts["bn1"].forward(_parts["conv1"].forward(rgb))).MoveToOuterDisposeScope();
        }
        using (var pooled = _parts["maxpool"].forward(s[0])) s[1] = _parts["layer1"].forward(pooled);
        for (int i = 2; i < 5; i++) s[i] = _parts[$"layer{i}"].forward(s[i - 1]);
        return new EncoderFeatures(s);
    }

    public override Tensor Decode(EncoderFeatures enc, out Tensor? decoderFeatures, bool keepDecoderFeatures = false)
    {
        Tensor full;
        using (var d = UpPath(ups, enc.Scales))
        using (var up = functional.interpolate(d, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Bilinear, align_corners: true))
            full = head.forward(up);
        return Classify(full, out decoderFeatures, keepDecoderFeatures);
    }
}
