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
    public SupervisedMethod(UNetConfig config) => Network = Segmenter2D.Create(config);
    public SupervisedMethod(UNetConfig config, MethodSettings _) : this(config) { }

    public string Name => "supervised";
    public Segmenter2D Network { get; }
    public Segmenter2D InferenceNetwork => Network;
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
