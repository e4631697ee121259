using SemiSeg.Inference;
using SemiSeg.Interop;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods.Volume;

/// <summary>
/// M&amp;N (Yeung et al., MLMI 2025, pakheiyeung/M-N): a 2D network run slice-wise and a 3D network trained from scratch
/// teach each other.
/// <list type="bullet">
/// <item>2D branch: the standard 2D UNet applied to every slice of a (B, 1, D, H, W) patch — (B·D, 1, H, W) in,
/// logits reshaped back to (B, C, D, H, W). It starts from the weights of a SemiSeg checkpoint given as
/// <c>init_2d=PATH</c> (a user's own pre-trained 2D model, e.g. a `train` or `pretrain` run's best.ckpt: every
/// parameter whose name and shape match is copied), else from scratch.</item>
/// <item>Loss of each network (the reference's): soft Dice (softmax) + <c>kl_weight</c>·KL(target ‖ softmax(pred)), i.e.
/// KLDiv(log_softmax(pred), target) averaged per voxel; the target is the one-hot label on labeled volumes and the
/// other network's softmax (detached) on unlabeled ones.</item>
/// <item>Stage 1 (iterations &lt; <c>warmup_fraction</c>·T, the reference's 500 of 4000 epochs = 1/8): labeled volumes
/// only.</item>
/// <item>Learning-rate guided sampling, the released code's rule: after the warm-up w, batch t holds
/// n_u = ⌊(t − w)/(T − w) · B⌋ unlabeled volumes and B − n_u labeled ones (B = --batch-size), so the unlabeled share grows
/// linearly from 0 to (B − 1)/B. Before the warm-up ends n_u = 0.</item>
/// </list>
/// Deliberate differences: the reference's 2D model is a SegFormer-B2 from natural images with LoRA — nothing can be
/// downloaded here, so the 2D branch is the 2D UNet and its "pre-trained model" is whatever checkpoint the user gives;
/// both networks update every iteration on the same batch (the reference alternates an epoch of 2D with an epoch of
/// 3D and writes the 3D model's pseudo-masks to disk at fixed epochs: the soft targets here are always the current
/// ones); one optimizer and learning-rate schedule for both (the reference: AdamW 1e-3 for the 2D LoRA weights, 1e-4
/// for the 3D model — give `--optimizer adamw --lr 1e-4` to follow the 3D side). The 3D network is the inference
/// network, as in the paper's evaluation.
/// </summary>
public sealed class TwoDimToThreeDimCoTrainingMethod : IVolumeMethod
{
    readonly double _warmupFraction, _klWeight;

    public TwoDimToThreeDimCoTrainingMethod(VolumeMethodContext c)
    {
        _warmupFraction = c.Settings.Double("warmup_fraction", 0.125);
        _klWeight = c.Settings.Double("kl_weight", 1.0);
        var init = c.Settings.String("init_2d", "");
        if (_warmupFraction < 0 || _warmupFraction >= 1) throw new ArgumentException($"mn: warmup_fraction must be in [0, 1) (got {_warmupFraction})");
        Net3D = c.CreateNetwork();
        var kind2D = c.Settings.String("network_2d", "unet");
        if (!Segmenter2D.TryParse(kind2D, out var k2)) throw new ArgumentException($"mn: network_2d '{kind2D}' is not a 2D network (unet, resunet, resnet18-unet, resnet34-unet)");
        Net2D = Segmenter2D.Create(c.Network with { Kind = k2 });
        if (init.Length > 0) Initialised2D = Load2D(init, Net2D);
    }

    public string Name => "mn";
    public nn.Module<Tensor, Tensor> Net3D { get; }
    public Segmenter2D Net2D { get; }
    /// <summary>Parameters copied from init_2d (0 without one).</summary>
    public int Initialised2D { get; }
    public nn.Module<Tensor, Tensor> InferenceNetwork => Net3D;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Net3D, Net2D };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Net3D, Net2D };

    /// <summary>The released code's sampling rule (see the class summary).</summary>
    public static int UnlabeledCount(long iteration, long maxIterations, int batchSize, double warmupFraction)
    {
        long w = (long)Math.Round(warmupFraction * maxIterations);
        if (iteration < w || maxIterations <= w) return 0;
        return (int)Math.Floor((double)(iteration - w) / (maxIterations - w) * batchSize);
    }

    public (int labeled, int unlabeled) Composition(long iteration, long maxIterations, int batchSize, int labeledBatchSize)
    {
        int nu = Math.Min(UnlabeledCount(iteration, maxIterations, batchSize, _warmupFraction), batchSize - 1);
        return (batchSize - nu, nu);
    }

    /// <summary>The 2D network over every slice of a (B, C, D, H, W) batch, logits as (B, K, D, H, W).</summary>
    public static Tensor SliceWise(Segmenter2D net, Tensor volumes)
    {
        long b = volumes.shape[0], c = volumes.shape[1], d = volumes.shape[2], h = volumes.shape[3], w = volumes.shape[4];
        var slices = volumes.permute(0, 2, 1, 3, 4).reshape(b * d, c, h, w);
        var logits = net.forward(slices);
        return logits.reshape(b, d, logits.shape[1], h, w).permute(0, 2, 1, 3, 4);
    }

    /// <summary>Soft Dice (squared denominators, all classes) + kl_weight·mean-per-voxel KL(target ‖ softmax(logits)).</summary>
    public Tensor Loss(Tensor logits, Tensor target)
    {
        var logp = functional.log_softmax(logits, 1);
        var p = logp.exp();
        var dims = Enumerable.Range(0, (int)logits.dim()).Where(i => i != 1).Select(i => (long)i).ToArray();
        var dice = 1 - ((2 * (p * target).sum(dims) + 1e-5) / ((p * p).sum(dims) + (target * target).sum(dims) + 1e-5)).mean();
        var kl = (target * ((target + 1e-8).log() - logp)).sum(1).mean();
        return dice + _klWeight * kl;
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long nu = images.shape[0] - labeledCount;
        long k = Net2D.Config.NumClasses;
        var o3 = Net3D.forward(images);
        var o2 = SliceWise(Net2D, images);
        var onehot = functional.one_hot(labels, k).permute(0, 4, 1, 2, 3).to_type(o3.dtype);
        Tensor target3 = onehot, target2 = onehot;
        if (nu > 0)
        {
            // one target per network over the whole batch, as the reference builds it: labels, then the other's softmax
            using (no_grad())
            {
                target3 = cat(new[] { onehot, functional.softmax(o2.narrow(0, labeledCount, nu), 1) }, 0);
                target2 = cat(new[] { onehot, functional.softmax(o3.narrow(0, labeledCount, nu), 1) }, 0);
            }
        }
        var l3 = Loss(o3, target3);
        var l2 = Loss(o2, target2);
        return new MethodStep(l3 + l2, new Dictionary<string, Tensor> { ["loss3d"] = l3, ["loss2d"] = l2 });
    }

    /// <summary>Starts the 2D branch from a PyTorch state dict of its encoder (e.g. torchvision's ImageNet ResNet for
    /// network_2d=resnet34-unet: every encoder tensor must match) or copies every parameter and buffer of a SemiSeg 2D
    /// checkpoint's network whose name and shape match.</summary>
    public static int Load2D(string checkpoint, Segmenter2D target)
    {
        if (StateDictFile.Recognise(checkpoint)) return PretrainedWeights.LoadEncoder(checkpoint, new[] { target });
        var (source, _) = Inference.CheckpointFile.LoadNetwork(checkpoint);
        using var _s = source;
        var src = source.state_dict();
        int copied = 0;
        using var noGrad = no_grad();
        foreach (var (name, t) in target.state_dict())
            if (src.TryGetValue(name, out var s) && s.shape.SequenceEqual(t.shape)) { t.copy_(s); copied++; }
        if (copied == 0) throw new InvalidDataException($"init_2d '{checkpoint}': no parameter matches the 2D UNet");
        return copied;
    }

    public void Dispose() { Net3D.Dispose(); Net2D.Dispose(); }
}
