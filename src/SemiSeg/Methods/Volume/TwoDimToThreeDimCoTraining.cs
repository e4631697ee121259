using SemiSeg.Inference;
using SemiSeg.Interop;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods.Volume;

/// <summary>
/// M&amp;N (Yeung et al., MLMI 2025, pakheiyeung/M-N train.py, losses.py, experiments/la_4_pseudo): a 2D network run
/// slice-wise and a 3D network trained from scratch teach each other.
/// <list type="bullet">
/// <item>2D branch: the standard 2D UNet applied to every slice of a (B, 1, D, H, W) patch — (B·D, 1, H, W) in,
/// logits reshaped back to (B, C, D, H, W), the reference's Convert_2D_3D. It starts from the weights of a SemiSeg
/// checkpoint given as <c>init_2d=PATH</c> (a user's own pre-trained 2D model, e.g. a `train` or `pretrain` run's
/// best.ckpt: every parameter whose name and shape match is copied), else from scratch.</item>
/// <item>Loss of each network, the reference's criterion: DiceLoss(normalization='softmax') — per class over the
/// batch's voxels, 2·Σpt / max(Σp² + Σt², 1e-6), averaged over classes, 1 − that — plus <c>kl_weight</c>·
/// nn.KLDivLoss(reduction='mean')(log_softmax(pred), target), whose 'mean' divides by every element, B·C·voxels. The
/// target is the one-hot label on labeled volumes and, on unlabeled ones, the other network's softmax computed as the
/// reference's labeller computes it: that network switched to eval() (no dropout, BatchNorm running statistics), under
/// no_grad, on the unlabeled volumes only (train.py `run`: model_pseudo in eval, `with torch.no_grad()`).
/// <c>eval_targets=false</c> takes them from the training forward pass instead (train mode, detached): the former
/// behaviour.</item>
/// <item>Stage 1 (iterations &lt; <c>warmup_fraction</c>·T, the reference's 500 of 4000 epochs = 1/8): labeled volumes
/// only.</item>
/// <item>Learning-rate guided sampling, the released code's rule: after the warm-up w, batch t holds
/// n_u = ⌊(t − w)/(T − w) · B⌋ unlabeled volumes and B − n_u labeled ones (B = --batch-size), so the unlabeled share grows
/// linearly from 0 to (B − 1)/B. Before the warm-up ends n_u = 0.</item>
/// <item>The schedule the sampling is paired with: the reference anneals a cosine to 0 at the stage switch and restarts
/// it there (CosineAnnealingWarmRestarts with T0 = 450 epochs after a 50-epoch linear warm-up, then T0 = 3500), so the
/// unlabeled share grows while the restarted rate decays. Here the run's schedule (<c>--schedule cosine --warmup N</c>
/// gives the reference's shape) is restarted from the base rate at w (<see cref="IRestartsSchedule"/>);
/// <c>lr_restart=false</c> runs one schedule over the whole run, the former behaviour.</item>
/// </list>
/// What the reference does that this file does not, and why:
/// <list type="bullet">
/// <item>The 2D model is a SegFormer-B2 pre-trained on natural images (ADE20K) with LoRA r64/α64 — nothing can be
/// downloaded here, so the 2D branch is the 2D UNet and its "pre-trained model" is whatever checkpoint the user
/// gives.</item>
/// <item>The 3D model is the reference's `unet3d` (base_n_filter 32, dropout 0): here --network vnet|unet3d, as the
/// paper says the method is model-agnostic.</item>
/// <item>The reference alternates an epoch of 2D training with an epoch of 3D training (freq_switch 1) with an optimizer
/// each (AdamW 1e-3 for the LoRA weights, 1e-4 for the 3D model); here both networks update every iteration on the same
/// batch with one optimizer (give `--optimizer adamw --lr 1e-4` to follow the 3D side). The soft targets are the other
/// network's current eval-mode prediction in both.</item>
/// <item>The reference writes the 3D model's predicted masks of the unlabeled volumes to disk at the switch and at
/// epochs 1000/1500/2000/3000; they are not training targets (the targets are the on-the-fly predictions above) but
/// bias crop sampling: with probability 0.5 a crop must contain foreground of the label or that mask
/// (dataset.py). Here crops are uniformly random, for labeled and unlabeled volumes alike, as in the rest of the LA
/// lineage in SemiSeg.</item>
/// <item>In stage 1 the cosine spans [0, w) with the warm-up multiplying its first iterations; the reference's first
/// cosine starts after its 50-epoch warm-up. The difference is confined to the warm-up's length.</item>
/// <item>The reference's unlabeled pool is every non-training file, validation and test volumes included
/// (transductive); here it is the training split's unlabeled volumes only.</item>
/// </list>
/// The 3D network is the inference network, as in the paper's evaluation.
/// </summary>
public sealed class TwoDimToThreeDimCoTrainingMethod : IVolumeMethod, IRestartsSchedule
{
    readonly double _warmupFraction, _klWeight;
    readonly bool _evalTargets, _lrRestart;

    public TwoDimToThreeDimCoTrainingMethod(VolumeMethodContext c)
    {
        _warmupFraction = c.Settings.Double("warmup_fraction", 0.125);
        _klWeight = c.Settings.Double("kl_weight", 1.0);
        _evalTargets = c.Settings.Bool("eval_targets", true);
        _lrRestart = c.Settings.Bool("lr_restart", true);
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
        long w = WarmupIterations(maxIterations, warmupFraction);
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

    /// <summary>The reference's restart of the schedule at the stage switch (see the class summary).</summary>
    public long ScheduleRestart(long maxIterations) => _lrRestart ? WarmupIterations(maxIterations, _warmupFraction) : 0;

    static long WarmupIterations(long maxIterations, double fraction) => (long)Math.Round(fraction * maxIterations);

    /// <summary>The reference's criterion: DiceLoss(normalization='softmax') + kl_weight·KLDivLoss(reduction='mean')
    /// (log_softmax(logits), target), the KL averaged over every element (B·C·voxels).</summary>
    public Tensor Loss(Tensor logits, Tensor target) => Loss(logits, target, _klWeight);

    public static Tensor Loss(Tensor logits, Tensor target, double klWeight)
    {
        using var scope = NewDisposeScope();
        var logp = functional.log_softmax(logits, 1);
        var p = logp.exp();
        var dims = Enumerable.Range(0, (int)logits.dim()).Where(i => i != 1).Select(i => (long)i).ToArray();
        var dice = 1 - (2 * (p * target).sum(dims) / ((p * p).sum(dims) + (target * target).sum(dims)).clamp_min(1e-6)).mean();
        var kl = (target.xlogy(target) - target * logp).mean();
        return (dice + klWeight * kl).MoveToOuterDisposeScope();
    }

    /// <summary>The unlabeled targets: for the 3D network the 2D network's softmax, for the 2D network the 3D network's,
    /// each computed under no_grad with the labeller in eval mode (the reference's model_pseudo.eval()); both networks'
    /// modes are restored afterwards.</summary>
    public (Tensor for3D, Tensor for2D) CrossTargets(Tensor unlabeled)
    {
        using var noGrad = no_grad();
        bool was3 = Net3D.training, was2 = Net2D.training;
        Net3D.eval(); Net2D.eval();
        try
        {
            return (functional.softmax(SliceWise(Net2D, unlabeled), 1), functional.softmax(Net3D.forward(unlabeled), 1));
        }
        finally { Net3D.train(was3); Net2D.train(was2); }
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long nu = images.shape[0] - labeledCount;
        long k = Net2D.Config.NumClasses;
        Tensor for3D = empty(0, device: images.device), for2D = empty(0, device: images.device);
        if (nu > 0 && _evalTargets) (for3D, for2D) = CrossTargets(images.narrow(0, labeledCount, nu));
        var o3 = Net3D.forward(images);
        var o2 = SliceWise(Net2D, images);
        if (nu > 0 && !_evalTargets)
            using (no_grad()) { for3D = functional.softmax(o2.narrow(0, labeledCount, nu), 1); for2D = functional.softmax(o3.narrow(0, labeledCount, nu), 1); }
        var onehot = functional.one_hot(labels, k).permute(0, 4, 1, 2, 3).to_type(o3.dtype);
        // one target per network over the whole batch, as the reference builds it: labels and the other's softmax
        var target3 = nu > 0 ? cat(new[] { onehot, for3D }, 0) : onehot;
        var target2 = nu > 0 ? cat(new[] { onehot, for2D }, 0) : onehot;
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
