using SemiSeg.Losses;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods;

/// <summary>
/// Supervised baseline (SSL4MIS train_fully_supervised_2D.py): loss = 0.5·(CE + Dice) on the labeled images; any
/// unlabeled images in the batch are ignored. This is the "labeled only" row of every SSMIS table.
/// </summary>
public sealed class SupervisedMethod : ISegmentationMethod
{
    public SupervisedMethod(UNetConfig config) => Network = new UNet2D(config);
    public SupervisedMethod(UNetConfig config, MethodSettings _) : this(config) { }

    public string Name => "supervised";
    public UNet2D Network { get; }
    public UNet2D InferenceNetwork => Network;
    public IReadOnlyList<nn.Module> TrainableModules => new nn.Module[] { Network };
    public IReadOnlyList<nn.Module> StatefulModules => new nn.Module[] { Network };

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        var x = labeledCount == images.shape[0] ? images : images.narrow(0, 0, labeledCount);
        var logits = Network.forward(x);
        var loss = SegmentationLosses.CeDice(logits, labels);
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["sup"] = loss });
    }

    public void Dispose() => Network.Dispose();
}

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
    };

    public static Entry Get(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown method '{name}'; available: {string.Join(", ", All.Select(e => e.Name))}");
}
