using SemiSeg.Methods.Volume;
using SemiSeg.Models;

namespace SemiSeg.Methods;

/// <summary>
/// The methods `--method` can name, each with its 2D variant (trained on slices with any 2D network, <see cref="Slices"/>)
/// and/or its 3D variant (volume patches with a VNet or 3D UNet, <see cref="Volumes"/>); a new method is its file plus
/// one line here.
/// </summary>
public static class MethodRegistry
{
    /// <summary>A method on 2D slices.</summary>
    public sealed record Entry(string Name, string Paper, string Summary, bool UsesUnlabeled, Func<UNetConfig, MethodSettings, ISegmentationMethod> Create);

    /// <summary>A method on 3D patches.</summary>
    public sealed record VolumeVariant(string Name, string Paper, string Summary, Func<VolumeMethodContext, IVolumeMethod> Create);

    /// <summary>A method name with the variants it has.</summary>
    public sealed record Method(string Name, Entry? Slices, VolumeVariant? Volumes);

    public static readonly IReadOnlyList<Entry> Slices = new[]
    {
        new Entry("supervised", "Ronneberger et al., U-Net (MICCAI 2015); SSL4MIS supervised baseline",
            "0.5·(CE + Dice) on labeled slices only", false, (c, s) => new SupervisedMethod(c, s)),
        new Entry("mean-teacher", "Tarvainen & Valpola, Mean teachers are better role models (NeurIPS 2017); SSL4MIS train_mean_teacher_2D.py",
            "EMA teacher on noisy unlabeled images, softmax-MSE consistency ramped up; params consistency, rampup, noise_std, noise_clamp, ema_decay, consistency_start, ema_buffers",
            true, (c, s) => new MeanTeacherMethod(c, s)),
        new Entry("ua-mt", "Yu et al., Uncertainty-aware self-ensembling model for semi-supervised 3D left atrium segmentation (MICCAI 2019); SSL4MIS 2D script",
            "Mean Teacher with consistency only where the teacher's MC entropy is below a rising threshold (ln C); params consistency, rampup, noise_std, noise_clamp, ema_decay, passes, ln2_threshold",
            true, (c, s) => new UncertaintyAwareMeanTeacherMethod(c, s)),
        new Entry("cps", "Chen et al., Semi-supervised semantic segmentation with cross pseudo supervision (CVPR 2021); SSL4MIS 2D script",
            "two independently initialised UNets supervise each other with hard pseudo-labels; params consistency, rampup, reference_init (default false; true = the Kaiming/Xavier pair SSL4MIS dropped)",
            true, (c, s) => new CrossPseudoSupervisionMethod(c, s)),
        new Entry("unimatch", "Yang et al., Revisiting weak-to-strong consistency in semi-supervised semantic segmentation (CVPR 2023); UniMatch more-scenarios/medical",
            "weak-view pseudo-labels (confidence 0.95, others ignored) teach two CutMix strong views and a feature-perturbed pass, Dice only; params conf_thresh, strong_weight, fp_weight, fp_dropout, cutmix_p",
            true, (c, s) => new UniMatchMethod(c, s)),
        new Entry("bcp", "Bai et al., Bidirectional copy-paste for semi-supervised medical image segmentation (CVPR 2023)",
            "labeled copy-paste pre-training, then EMA-teacher pseudo-labels mixed both ways with labeled patches, region-weighted Dice+CE; constant rate by default; stage 2 starts from the best pre-training checkpoint with its optimizer state; params pretrain_iterations, u_weight, ema_decay, stage2_from (best|last)",
            true, (c, s) => new BidirectionalCopyPasteMethod(c, s)),
        new Entry("m3hl", "Liu et al., Mutual mask mix with high-low level feature consistency (MICCAI 2025); PHPJava666/M3HL",
            "EMA teacher (its own initialisation); 4x4 grid masks mix labeled and unlabeled both ways, region-weighted Dice+CE, bottleneck cosine + last-decoder L1 consistency (use --schedule constant); params grid, mask_ratio, u_weight, ema_decay, hl_weight, pretrain_iterations, teacher_init (own: separately initialised as the reference; copy)",
            true, (c, s) => new MutualMaskMixMethod(c, s)),
        new Entry("abd", "Chi et al., Adaptive bidirectional displacement for semi-supervised medical image segmentation (CVPR 2024); chy-upc/ABD cross teaching",
            "two UNets on weak/strong views, cross pseudo-supervision plus KL-guided confident-patch displacement (ABD-R) and inverse-confidence labeled swaps (ABD-I); params grid, top_k, consistency, rampup, abd_i_weight, abd_i_until, abd_i_p, strong_view (abd|unimatch), reference_init (default false)",
            true, (c, s) => new AdaptiveDisplacementMethod(c, s, cad: false)),
        new Entry("cad", "Xiao et al., Confidence-aware adaptive displacement (arXiv 2502.00536), on ABD",
            "ABD with the largest low-confidence region replaced by the other view's confident content (LLCR) under a rising threshold and shrinking size cap (DTE); params as abd plus tau_start, tau_end, max_area_start, max_area_end",
            true, (c, s) => new AdaptiveDisplacementMethod(c, s, cad: true)),
        new Entry("action", "You et al., ACTION: anatomical-aware contrastive distillation for semi-supervised medical image segmentation (IPMI 2023); charlesyou999648/ACTION",
            "stage 1: ISD soft-negative distillation (global + local, T_s 0.1 / T_t 0.01, queue 36) + supervised; stage 2: EMA-teacher CutMix pseudo-labels (confidence-weighted CE) + ReCo anatomical contrast with sampled hard negatives; params pretrain_iterations, queue_size, student_temp, teacher_temp, isd_weight, ema_decay, strong_threshold, weak_threshold, contrast_temp, num_queries, num_negatives, contrast_weight (k1, default 0.01), local_pool, stage2_from_ema, cutmix_box (action|unimatch)",
            true, (c, s) => new AnatomicalContrastiveDistillationMethod(c, s)),
        new Entry("ersr", "Zhou et al., Ellipse-constrained pseudo-label refinement and symmetric regularization (arXiv 2508.19815), for fetal-head ultrasound",
            "EMA teacher; pseudo-labels filtered by boundary consistency and ellipse regularity (adaptive thresholds), refined toward the fitted ellipse, plus perturbation and major-axis mirror consistency; params ellipse_class, consistency, rampup, ema_decay, score_momentum (the thresholds' running means), min_score, sigma_centre, sigma_outside, mirror_weight",
            true, (c, s) => new EllipseRefinementMethod(c, s)),
        new Entry("meta-contrast", "Peng et al., Self-paced contrastive learning for semi-supervised medical image segmentation with meta-labels (NeurIPS 2021); jizongFox/Self-paced-Contrastive-Learning",
            "supervised-contrastive loss on the pooled bottleneck with slice-position / patient / phase meta-labels as positives, self-paced pair weights; `semiseg pretrain` is its pre-training stage; pre-training batches are m scans x one slice per partition over all training slices, kinds combined with importance weights, kinds with one value on the data switched off; params temperature, supervised_weight, contrast_weight, partitions, scans_per_batch, soft, gamma_power, partition|patient|cycle|self (on/off) and their _gamma_begin/_gamma_end/_weight, dropout (default off, as the reference UNet)",
            true, (c, s) => new MetaLabelContrastMethod(c, s)),
        new Entry("transmedseg", "Wang et al., TransMedSeg: a transferable semantic framework for semi-supervised medical image segmentation (arXiv 2505.14753)",
            "EMA teacher; student features augmented toward the teacher's per-class statistics (light memory) through the closed-form upper bound of the expected cross-entropy (ISDA-style logit offsets), on labeled and confident pseudo-labeled pixels; params consistency, rampup, ema_decay, lambda, conf_thresh, memory_momentum, pixels_per_class",
            true, (c, s) => new TransferableSemanticAugmentationMethod(c, s)),
        new Entry("c3s3", "He et al., C3S3: complementary competition and contrastive selection for semi-supervised medical image segmentation (ICME 2025); Y-TARL/C3S3",
            "UNet and ResNet-encoder UNet on two views; the one with the lower labeled loss teaches the other with sharpened predictions; view cosine consistency; per-pixel contrast over the networks' foreground intersection and union; both averaged at inference; params alpha, sharpen_temp, consistency, rampup, contrast_temp, contrast_weight, view_weight, second_view, inference, form (former: anchors)",
            true, (c, s) => new ComplementaryCompetitionMethod(c, s)),
        new Entry("medl", "He et al., Mutual evidential deep learning for semi-supervised medical image segmentation (arXiv 2505.12418)",
            "UNet and ResNet-encoder UNet with Dirichlet evidence; class-aware Dempster fusion gives pseudo-labels; Fisher-weighted evidential loss moving from reliable to unreliable pixels; uncertainty curriculum on labeled pixels; params consistency, rampup, kl_weight, gamma, reliability_momentum, evidence (exp|softplus)",
            true, (c, s) => new MutualEvidentialMethod(c, s)),
    };

    public static readonly IReadOnlyList<VolumeVariant> Volumes = new VolumeVariant[]
    {
        new VolumeVariant("supervised", "Milletari et al., V-Net (3DV 2016); the LA lineage's labeled-only row",
            "0.5·(CE + Dice) on labeled patches", c => new VolumeSupervisedMethod(c)),
        new VolumeVariant("mean-teacher", "Tarvainen & Valpola (NeurIPS 2017) as UA-MT's train_LA_meanteacher.py runs it",
            "EMA teacher on noisy unlabeled patches, softmax-MSE consistency ramped up; params consistency, rampup, noise_std, noise_clamp, ema_decay",
            c => new VolumeMeanTeacherMethod(c, uncertaintyAware: false)),
        new VolumeVariant("ua-mt", "Yu et al., Uncertainty-aware self-ensembling model for semi-supervised 3D left atrium segmentation (MICCAI 2019)",
            "Mean Teacher with consistency only where the teacher's MC entropy (8 noisy passes) is below (3/4 + 1/4·ramp)·ln 2; params as mean-teacher plus passes",
            c => new VolumeMeanTeacherMethod(c, uncertaintyAware: true)),
        new VolumeVariant("cps", "Chen et al., Cross pseudo supervision (CVPR 2021); SSL4MIS 3D script",
            "two differently initialised 3D networks supervise each other with hard pseudo-labels; params consistency, rampup",
            c => new VolumeCrossPseudoSupervisionMethod(c)),
        new VolumeVariant("bcp", "Bai et al., Bidirectional copy-paste (CVPR 2023), LA_BCP_train.py",
            "labeled 3D copy-paste pre-training, then EMA-teacher pseudo-labels (largest 3D component) mixed both ways with labeled cubes; params pretrain_iterations, u_weight, ema_decay",
            c => new VolumeCopyPasteMethod(c)),
        new VolumeVariant("mn", "Yeung et al., M&N: semi-supervised 3D medical segmentation from 2D natural-image pretrained model (MLMI 2025)",
            "a 2D UNet run slice-wise and a 3D network co-trained on each other's soft predictions (eval-mode, detached) after a labeled-only warm-up, unlabeled share of each batch growing linearly as the restarted learning rate decays; params warmup_fraction, init_2d (a SemiSeg 2D checkpoint, or a PyTorch state dict of the 2D encoder such as torchvision's ImageNet ResNet), network_2d (unet, resunet, resnet18-unet, resnet34-unet), kl_weight, eval_targets, lr_restart",
            c => new TwoDimToThreeDimCoTrainingMethod(c)),
        new VolumeVariant("c3s3", "He et al., C3S3: complementary competition and contrastive selection (ICME 2025), Y-TARL/C3S3 train_LA.py",
            "a VNet and a 3D ResNet-34 network: the better on the labeled loss teaches the other its sharpened unlabeled softmax, view consistency and outcome-driven contrast in both, both averaged at inference; params alpha, sharpen_temp, consistency, rampup, contrast_temp, contrast_weight, view_weight, inference",
            c => new VolumeComplementaryCompetitionMethod(c)),
    };

    /// <summary>Every method name, with its 2D and 3D variants.</summary>
    public static readonly IReadOnlyList<Method> All = Slices.Select(e => e.Name).Concat(Volumes.Select(v => v.Name)).Distinct()
        .Select(n => new Method(n, Slices.FirstOrDefault(e => e.Name == n), Volumes.FirstOrDefault(v => v.Name == n))).ToArray();

    /// <summary>The 2D variant of a method.</summary>
    public static Entry Get(string name) =>
        Slices.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException(Volumes.Any(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase))
            ? $"method '{name}' has no 2D version; train it with --network vnet or unet3d"
            : $"unknown method '{name}'; available: {string.Join(", ", All.Select(e => e.Name))}");

    /// <summary>The 3D variant of a method.</summary>
    public static VolumeVariant GetVolume(string name) =>
        Volumes.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"method '{name}' has no 3D version; 3D methods: {string.Join(", ", Volumes.Select(e => e.Name))}");
}
