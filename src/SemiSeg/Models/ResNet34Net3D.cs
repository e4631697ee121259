using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>3D ResNet basic block: conv3×3×3(stride, no bias) → BN → ReLU → conv3×3×3 → BN, plus the input (through a
/// strided 1×1×1 conv + BN where the shape changes), → ReLU.</summary>
public sealed class BasicBlock3D : Module<Tensor, Tensor>
{
    readonly Sequential body;
    readonly Module<Tensor, Tensor> shortcut;

    public BasicBlock3D(long cin, long cout, long stride = 1) : base(nameof(BasicBlock3D))
    {
        body = Sequential(Conv3d(cin, cout, 3, stride: stride, padding: 1, bias: false), Norms.BatchNorm3d(cout), ReLU(),
                          Conv3d(cout, cout, 3, padding: 1, bias: false), Norms.BatchNorm3d(cout));
        shortcut = stride == 1 && cin == cout ? Identity() : Sequential(Conv3d(cin, cout, 1, stride: stride, bias: false), Norms.BatchNorm3d(cout));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return functional.relu(body.forward(x) + shortcut.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// C3S3's second network (Y-TARL/C3S3 models/ResNet34.py with models/resnet.py's resnet34): a 3D ResNet-34 encoder —
/// a 7×7×7 stride-1 stem to 16 channels (no max-pool), then 3/4/6/3 basic blocks at 32/64/128/256 channels, each stage
/// starting with stride 2 — and the VNet decoder on its five maps (stride-2 transposed convolutions + BN + ReLU up,
/// additive skips, 3/3/2/1 conv-BN-ReLU stages), Dropout3d(0.5) before the 1×1×1 output convolution when
/// <c>dropout</c> is on (the reference's has_dropout=True; unlike the VNet, none at the bottleneck). All convolution
/// weights are Kaiming-normal and BatchNorm weights 1, as the reference's __init_weight leaves them (which also undoes
/// resnet.py's zeroed last-BN gammas). The input may have any channel count (the reference's stem takes 1).
/// </summary>
public sealed class ResNet34Net3D : Module<Tensor, Tensor>
{
    readonly Sequential stem;
    readonly ModuleList<Sequential> layers;
    readonly ModuleList<Module<Tensor, Tensor>> dec, up;
    readonly Conv3d outConv;
    readonly bool dropout;

    /// <summary>The reference's resnet34 block counts per stage.</summary>
    public static readonly int[] Blocks = { 3, 4, 6, 3 };

    public ResNet34Net3D(int inChannels = 1, int numClasses = 2, int filters = 16, bool dropout = true) : base(nameof(ResNet34Net3D))
    {
        NumClasses = numClasses;
        this.dropout = dropout;
        var f = new long[] { filters, filters * 2, filters * 4, filters * 8, filters * 16 };
        stem = Sequential(Conv3d(inChannels, f[0], 7, padding: 3, bias: false), Norms.BatchNorm3d(f[0]), ReLU());
        layers = new ModuleList<Sequential>();
        for (int s = 0; s < 4; s++)
        {
            var blocks = new List<Module<Tensor, Tensor>> { new BasicBlock3D(f[s], f[s + 1], 2) };
            for (int b = 1; b < Blocks[s]; b++) blocks.Add(new BasicBlock3D(f[s + 1], f[s + 1]));
            layers.Add(Sequential(blocks));
        }
        int[] decStages = { 3, 3, 2, 1 };
        dec = new ModuleList<Module<Tensor, Tensor>>(); up = new ModuleList<Module<Tensor, Tensor>>();
        for (int i = 4; i >= 1; i--)
        {
            up.Add(Sequential(ConvTranspose3d(f[i], f[i - 1], 2, stride: 2), Norms.BatchNorm3d(f[i - 1]), ReLU()));
            dec.Add(new ConvStack3D(decStages[4 - i], f[i - 1], f[i - 1]));
        }
        outConv = Conv3d(f[0], numClasses, 1);
        RegisterComponents();
        using var noGrad = no_grad();
        foreach (var m in modules())
        {
            if (m is Conv3d c) init.kaiming_normal_(c.weight!);
            else if (m is ConvTranspose3d t) init.kaiming_normal_(t.weight!);
        } // BatchNorm weights start at 1 and biases at 0 already

    }

    public int NumClasses { get; }

    /// <summary>The logits; the last decoder map is let go at once (as VNet.forward: no handle keeps the widest
    /// activation alive through the backward pass).</summary>
    public override Tensor forward(Tensor x)
    {
        var (logits, features) = ForwardWithFeatures(x);
        features.Dispose();
        return logits;
    }

    /// <summary>The logits and the last decoder map before the output dropout (where C3S3's projector reads).</summary>
    public (Tensor logits, Tensor features) ForwardWithFeatures(Tensor x)
    {
        using var scope = NewDisposeScope();
        var skips = new Tensor[5];
        skips[0] = stem.forward(x);
        for (int s = 0; s < 4; s++) skips[s + 1] = layers[s].forward(skips[s]);
        var h = skips[4];
        for (int i = 0; i < 4; i++) h = dec[i].forward(up[i].forward(h) + skips[3 - i]);
        var features = h;
        if (dropout) h = functional.dropout3d(h, 0.5, training);
        var logits = NarrowOutputs.Forward(outConv, h, padding: 0);
        return (logits.MoveToOuterDisposeScope(), features.MoveToOuterDisposeScope());
    }
}
