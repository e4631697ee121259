using SemiSeg.Models;

namespace SemiSeg.Methods;

/// <summary>The methods the CLI can name.</summary>
public static class MethodRegistry
{
    public sealed record Entry(string Name, string Paper, string Summary, bool UsesUnlabeled, Func<UNetConfig, MethodSettings, ISegmentationMethod> Create);

    public static readonly IReadOnlyList<Entry> All = new[]
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
            "two differently initialised UNets supervise each other with hard pseudo-labels; params consistency, rampup",
            true, (c, s) => new CrossPseudoSupervisionMethod(c, s)),
        new Entry("unimatch", "Yang et al., Revisiting weak-to-strong consistency in semi-supervised semantic segmentation (CVPR 2023); UniMatch more-scenarios/medical",
            "weak-view pseudo-labels (confidence 0.95, others ignored) teach two CutMix strong views and a feature-perturbed pass, Dice only; params conf_thresh, strong_weight, fp_weight, fp_dropout, cutmix_p",
            true, (c, s) => new UniMatchMethod(c, s)),
        new Entry("bcp", "Bai et al., Bidirectional copy-paste for semi-supervised medical image segmentation (CVPR 2023)",
            "labeled copy-paste pre-training, then EMA-teacher pseudo-labels mixed both ways with labeled patches, region-weighted Dice+CE (use --schedule constant); params pretrain_iterations, u_weight, ema_decay",
            true, (c, s) => new BidirectionalCopyPasteMethod(c, s)),
    };

    public static Entry Get(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown method '{name}'; available: {string.Join(", ", All.Select(e => e.Name))}");
}
