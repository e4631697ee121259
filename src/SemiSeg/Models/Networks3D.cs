using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

public enum Net3DKind { Vnet, Unet3d }

/// <summary>Which 3D network a volume method trains (the class count and input channels come from the data's
/// <see cref="UNetConfig"/>): VNet (16 base filters, the LA lineage) or the 3D UNet (16..256).</summary>
public sealed record Net3DConfig
{
    public Net3DKind Kind { get; init; } = Net3DKind.Vnet;
    public int Filters { get; init; } = 16;
    /// <summary>VNet's Dropout3d(0.5) at the bottleneck and before the output (the semi-supervised scripts' has_dropout).</summary>
    public bool Dropout { get; init; } = true;

    public Module<Tensor, Tensor> Create(int inChannels, int numClasses) => Kind switch
    {
        Net3DKind.Vnet => new VNet(inChannels, numClasses, Filters, Dropout),
        Net3DKind.Unet3d => new UNet3D(inChannels, numClasses, Enumerable.Range(0, 5).Select(i => Filters << i).ToArray()),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind)),
    };

    public string Describe() => Kind == Net3DKind.Vnet ? $"VNet ({Filters} filters{(Dropout ? ", dropout" : "")})" : $"3D UNet ({Filters}..{Filters << 4})";
}

/// <summary>n × (conv3x3x3 → BatchNorm3d → ReLU): the VNet lineage's ConvBlock.</summary>
public sealed class ConvStack3D : Module<Tensor, Tensor>
{
    readonly Sequential body;

    public ConvStack3D(int stages, long cin, long cout, bool inplace = false) : base(nameof(ConvStack3D))
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        for (int i = 0; i < stages; i++)
        {
            layers.Add(($"conv{i}", Conv3d(i == 0 ? cin : cout, cout, 3, padding: 1)));
            layers.Add(($"bn{i}", Norms.BatchNorm3d(cout)));
            layers.Add(($"relu{i}", ReLU(inplace: inplace)));
        }
        body = Sequential(layers);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => EagerForward.Run(body, x);
}

/// <summary>
/// A Sequential's layers one after another, each intermediate result disposed as soon as the next layer has consumed
/// it. Autograd keeps its own references to what backward needs, so in training this frees only what nothing saved;
/// without gradients (an EMA teacher, a sliding window) it frees every intermediate at once instead of at the end of
/// the network's dispose scope, which is what PyTorch's reference counting does for the peers. The input is the
/// caller's and is never disposed; an in-place layer that returns its input object is not disposed under its result.
/// </summary>
public static class EagerForward
{
    public static Tensor Run(Sequential layers, Tensor x)
    {
        var h = x;
        foreach (var layer in layers.children())
        {
            var next = ((Module<Tensor, Tensor>)layer).call(h); // call, not forward: hooks (the gradient check's pins) run as in Sequential
            Release(h, next, x);
            h = next;
        }
        return h;
    }

    /// <summary>Disposes <paramref name="consumed"/> unless it is the caller's <paramref name="keep"/> or the same
    /// object as <paramref name="result"/>.</summary>
    public static void Release(Tensor consumed, Tensor result, Tensor keep)
    {
        if (!ReferenceEquals(consumed, keep) && !ReferenceEquals(consumed, result)) consumed.Dispose();
    }
}

/// <summary>
/// VNet as the LA lineage (UA-MT, SASSNet, MC-Net, BCP) uses it: 16 base filters, encoder stages of 1/2/3/3/3
/// conv-BN-ReLU blocks, stride-2 2×2×2 convolutions down, stride-2 transposed convolutions up, additive skips,
/// decoder stages 3/3/2/1, Dropout3d(0.5) on the bottleneck and before the 1×1×1 output convolution when
/// <c>dropout</c> is on (the semi-supervised scripts' has_dropout=True).
/// </summary>
public sealed class VNet : Module<Tensor, Tensor>
{
    readonly ModuleList<Module<Tensor, Tensor>> enc, down, dec, up;
    readonly Conv3d outConv;
    readonly bool dropout;

    /// <param name="inplace">ReLU in place on the batch-norm output, as the lineage's VNet (nn.ReLU(inplace=True)):
    /// BN's backward needs its input, not its output, so values and gradients are the same and one activation per
    /// layer is not kept (the kernel self-check builds it out of place, which its pinned float64 pass needs).</param>
    public VNet(int inChannels = 1, int numClasses = 2, int filters = 16, bool dropout = true, bool inplace = true) : base(nameof(VNet))
    {
        NumClasses = numClasses;
        this.dropout = dropout;
        var f = new long[] { filters, filters * 2, filters * 4, filters * 8, filters * 16 };
        int[] encStages = { 1, 2, 3, 3, 3 }, decStages = { 3, 3, 2, 1 };
        enc = new ModuleList<Module<Tensor, Tensor>>(); down = new ModuleList<Module<Tensor, Tensor>>();
        dec = new ModuleList<Module<Tensor, Tensor>>(); up = new ModuleList<Module<Tensor, Tensor>>();
        for (int i = 0; i < 5; i++)
        {
            enc.Add(new ConvStack3D(encStages[i], i == 0 ? inChannels : f[i], f[i], inplace));
            if (i < 4) down.Add(Sequential(Conv3d(f[i], f[i + 1], 2, stride: 2), Norms.BatchNorm3d(f[i + 1]), ReLU(inplace: inplace)));
        }
        for (int i = 4; i >= 1; i--)
        {
            up.Add(Sequential(ConvTranspose3d(f[i], f[i - 1], 2, stride: 2), Norms.BatchNorm3d(f[i - 1]), ReLU(inplace: inplace)));
            dec.Add(new ConvStack3D(decStages[4 - i], f[i - 1], f[i - 1], inplace));
        }
        outConv = Conv3d(f[0], numClasses, 1);
        RegisterComponents();
    }

    public int NumClasses { get; }

    /// <summary>In training, the dropout before the 1×1×1 output convolution scales each image's output weights
    /// instead of copying the last decoder map (<see cref="OutputOfScaledInput"/>): the same values,
    /// gradients and random draws, one full-resolution activation fewer kept for backward. Off: the lineage's
    /// literal dropout3d then convolution (the tests compare the two).</summary>
    public bool FoldOutputDropout { get; set; } = true;

    /// <summary>
    /// The 1×1×1 output convolution of x·s, for x (N, C, D, H, W) in channels_last_3d and per-(image, channel) factors
    /// s (N, C), as conv(x, W·s): in channels_last_3d memory x is an (N, D·H·W, C) matrix per image, so the logits are
    /// one batched product with each image's scaled weights (N, C, K), plus the bias, and come out channels_last_3d.
    /// Autograd keeps x (a view, already kept as the ReLU's output) and the (N, C, K) weights; the scaled copy of x is
    /// never made. (Per-image convolutions over x.narrow would each give x a full-size gradient to sum.)
    /// </summary>
    Tensor OutputOfScaledInput(Tensor x, Tensor scale)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1], d = x.shape[2], hh = x.shape[3], w = x.shape[4];
        long k = outConv.weight!.shape[0];
        var rows = x.permute(0, 2, 3, 4, 1).reshape(n, d * hh * w, c);                 // a view of channels_last_3d memory
        var weights = outConv.weight!.reshape(1, k, c) * scale.unsqueeze(1);          // (N, K, C)
        var y = bmm(rows, weights.transpose(1, 2));                                   // (N, DHW, K)
        if (outConv.bias is not null) y = y + outConv.bias;
        return y.view(n, d, hh, w, k).permute(0, 4, 1, 2, 3).MoveToOuterDisposeScope(); // (N, K, D, H, W), channels_last_3d
    }

    /// <summary>The logits. The last decoder map that <see cref="ForwardWithFeatures"/> also returns is let go at once:
    /// autograd keeps it only until the backward pass has gone through the last decoder block, while a handle to it
    /// would keep the widest activation alive through the rest of the backward pass, at its memory peak.</summary>
    public override Tensor forward(Tensor x)
    {
        var (logits, features) = ForwardWithFeatures(x);
        features.Dispose();
        return logits;
    }

    /// <summary>The logits and the last decoder map before the output dropout (block_nine's output, where C3S3's
    /// projector reads).</summary>
    public (Tensor logits, Tensor features) ForwardWithFeatures(Tensor x)
    {
        using var scope = NewDisposeScope();
        // every intermediate is disposed once consumed (EagerForward): without gradients only the skips and the
        // tensors in flight stay alive, as in the lineage's PyTorch forward
        var skips = new Tensor[5];
        var h = x;
        for (int i = 0; i < 5; i++)
        {
            skips[i] = enc[i].forward(h);
            EagerForward.Release(h, skips[i], x);
            if (i < 4) h = EagerForward.Run((Sequential)down[i], skips[i]);
        }
        h = skips[4];
        if (dropout)
        {
            h = functional.dropout3d(h, 0.5, training);
            EagerForward.Release(skips[4], h, x);
        }
        for (int i = 0; i < 4; i++)
        {
            var u = EagerForward.Run((Sequential)up[i], h);
            EagerForward.Release(h, u, x);
            var sum = u + skips[3 - i]; // not in place: u is the ReLU output its backward reads
            u.Dispose(); skips[3 - i].Dispose();
            h = dec[i].forward(sum);
            EagerForward.Release(sum, h, x);
        }
        var features = h;
        Tensor logits;
        if (dropout && training && FoldOutputDropout && MemoryLayout.HasChannelsLastStrides(h))
        {
            // Dropout3d's factors, drawn as libtorch's feature dropout draws them (bernoulli_(1 − p) / (1 − p) on an
            // (N, C) tensor), folded into the output convolution's weights per image
            var keep = empty(new[] { h.shape[0], h.shape[1] }, h.dtype, h.device).bernoulli_(0.5).div_(0.5);
            logits = OutputOfScaledInput(h, keep);
        }
        else
        {
            if (dropout) h = functional.dropout3d(h, 0.5, training);
            logits = NarrowOutputs.Forward(outConv, h, padding: 0);
        }
        return (logits.MoveToOuterDisposeScope(), features.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// A 3D UNet with the 2D UNet's widths (16..256): two conv-BN-LeakyReLU per scale, max-pooling down, transposed
/// convolutions up, concatenated skips, 1×1×1 output convolution.
/// </summary>
public sealed class UNet3D : Module<Tensor, Tensor>
{
    readonly ModuleList<Sequential> enc, dec;
    readonly ModuleList<ConvTranspose3d> up;
    readonly Conv3d outConv;

    static Sequential Block(long cin, long cout) => Sequential(Conv3d(cin, cout, 3, padding: 1), Norms.BatchNorm3d(cout), new StableLeakyReLU(0.01),
                                                             Conv3d(cout, cout, 3, padding: 1), Norms.BatchNorm3d(cout), new StableLeakyReLU(0.01));

    public UNet3D(int inChannels = 1, int numClasses = 2, int[]? features = null) : base(nameof(UNet3D))
    {
        var f = features ?? new[] { 16, 32, 64, 128, 256 };
        NumClasses = numClasses;
        enc = new ModuleList<Sequential>(); dec = new ModuleList<Sequential>(); up = new ModuleList<ConvTranspose3d>();
        for (int i = 0; i < 5; i++) enc.Add(Block(i == 0 ? inChannels : f[i - 1], f[i]));
        for (int i = 4; i >= 1; i--)
        {
            up.Add(ConvTranspose3d(f[i], f[i - 1], 2, stride: 2));
            dec.Add(Block(f[i - 1] * 2, f[i - 1]));
        }
        outConv = Conv3d(f[0], numClasses, 1);
        RegisterComponents();
    }

    public int NumClasses { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var skips = new Tensor[5];
        skips[0] = enc[0].forward(x);
        for (int i = 1; i < 5; i++) skips[i] = enc[i].forward(functional.max_pool3d(skips[i - 1], new long[] { 2, 2, 2 }));
        var h = skips[4];
        for (int i = 0; i < 4; i++) h = dec[i].forward(cat(new[] { skips[3 - i], up[i].forward(h) }, 1));
        return NarrowOutputs.Forward(outConv, h, padding: 0).MoveToOuterDisposeScope();
    }
}
