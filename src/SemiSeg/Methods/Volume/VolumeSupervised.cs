using SemiSeg.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods.Volume;

/// <summary>
/// The 3D labeled-only baseline (the "V-Net sup." row of the LA tables): loss = 0.5·(CE + Dice) on the labeled patches;
/// unlabeled patches are never loaded (its batch composition asks for none).
/// Deliberate difference: the Dice term averages over all classes, background included (SSL4MIS's DiceLoss), where
/// the LA scripts take the foreground channel's Dice only; for multi-class 3D data the all-class form is the one
/// defined.
/// </summary>
public sealed class VolumeSupervisedMethod : IVolumeMethod
{
    public VolumeSupervisedMethod(VolumeMethodContext c) => Network = c.CreateNetwork();

    public string Name => "supervised";
    public nn.Module<Tensor, Tensor> Network { get; }
    public nn.Module<Tensor, Tensor> InferenceNetwork => Network;
    public IReadOnlyList<nn.Module> TrainableModules => new nn.Module[] { Network };
    public IReadOnlyList<nn.Module> StatefulModules => new nn.Module[] { Network };

    public (int labeled, int unlabeled) Composition(long iteration, long maxIterations, int batchSize, int labeledBatchSize) => (labeledBatchSize, 0);

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        var x = labeledCount == images.shape[0] ? images : images.narrow(0, 0, labeledCount);
        var loss = SegmentationLosses.CeDice(Network.forward(x), labels);
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["sup"] = loss });
    }

    public void Dispose() => Network.Dispose();
}
