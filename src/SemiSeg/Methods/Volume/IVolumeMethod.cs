using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods.Volume;

/// <summary>A method trained on 3D patches (B, C, D, H, W) with a 3D network (VNet, 3D UNet) for inference.</summary>
public interface IVolumeMethod : ITrainableMethod
{
    /// <summary>The 3D network used for validation (sliding window), best weights and prediction.</summary>
    nn.Module<Tensor, Tensor> InferenceNetwork { get; }
    nn.Module ITrainableMethod.InferenceModule => InferenceNetwork;

    /// <summary>How many labeled and unlabeled volumes batch <paramref name="iteration"/> holds, given the run's batch size
    /// and labeled batch size. Fixed for most methods; M&amp;N's unlabeled share grows.</summary>
    (int labeled, int unlabeled) Composition(long iteration, long maxIterations, int batchSize, int labeledBatchSize) =>
        (labeledBatchSize, batchSize - labeledBatchSize);
}

/// <summary>What a 3D method is built from: the 3D network, the data's classes/channels (and the 2D UNet for methods
/// that also run one slice-wise), and its hyper-parameters.</summary>
public sealed record VolumeMethodContext(Net3DConfig Network3D, UNetConfig Network, MethodSettings Settings)
{
    public nn.Module<Tensor, Tensor> CreateNetwork() => Network3D.Create(Network.InChannels, Network.NumClasses);
}

/// <summary>The methods `train --network vnet|unet3d` can name.</summary>
public static class VolumeMethodRegistry
{
    public sealed record Entry(string Name, string Paper, string Summary, Func<VolumeMethodContext, IVolumeMethod> Create);

    public static readonly IReadOnlyList<Entry> All = new Entry[]
    {
        new("supervised", "Milletari et al., V-Net (3DV 2016); the LA lineage's labeled-only row",
            "0.5·(CE + Dice) on labeled patches", c => new VolumeSupervisedMethod(c)),
        new("mean-teacher", "Tarvainen & Valpola (NeurIPS 2017) as UA-MT's train_LA_meanteacher.py runs it",
            "EMA teacher on noisy unlabeled patches, softmax-MSE consistency ramped up; params consistency, rampup, noise_std, noise_clamp, ema_decay",
            c => new VolumeMeanTeacherMethod(c, uncertaintyAware: false)),
        new("ua-mt", "Yu et al., Uncertainty-aware self-ensembling model for semi-supervised 3D left atrium segmentation (MICCAI 2019)",
            "Mean Teacher with consistency only where the teacher's MC entropy (8 noisy passes) is below (3/4 + 1/4·ramp)·ln 2; params as mean-teacher plus passes",
            c => new VolumeMeanTeacherMethod(c, uncertaintyAware: true)),
        new("cps", "Chen et al., Cross pseudo supervision (CVPR 2021); SSL4MIS 3D script",
            "two differently initialised 3D networks supervise each other with hard pseudo-labels; params consistency, rampup",
            c => new VolumeCrossPseudoSupervisionMethod(c)),
        new("bcp", "Bai et al., Bidirectional copy-paste (CVPR 2023), LA_BCP_train.py",
            "labeled 3D copy-paste pre-training, then EMA-teacher pseudo-labels (largest 3D component) mixed both ways with labeled cubes; params pretrain_iterations, u_weight, ema_decay",
            c => new VolumeCopyPasteMethod(c)),
        new("mn", "Yeung et al., M&N: semi-supervised 3D medical segmentation from 2D natural-image pretrained model (MLMI 2025)",
            "a 2D UNet run slice-wise and a 3D network co-trained on each other's soft predictions (eval-mode, detached) after a labeled-only warm-up, unlabeled share of each batch growing linearly as the restarted learning rate decays; params warmup_fraction, init_2d, kl_weight, eval_targets, lr_restart",
            c => new TwoDimToThreeDimCoTrainingMethod(c)),
        new("c3s3", "He et al., C3S3: complementary competition and contrastive selection (ICME 2025), Y-TARL/C3S3 train_LA.py",
            "a VNet and a 3D ResNet-34 network: the better on the labeled loss teaches the other its sharpened unlabeled softmax, view consistency and outcome-driven contrast in both, both averaged at inference; params alpha, sharpen_temp, consistency, rampup, contrast_temp, contrast_weight, view_weight, inference",
            c => new VolumeComplementaryCompetitionMethod(c)),
    };

    public static Entry Get(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"method '{name}' has no 3D version; 3D methods: {string.Join(", ", All.Select(e => e.Name))}");
}
