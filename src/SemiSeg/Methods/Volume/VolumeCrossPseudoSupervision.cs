using SemiSeg.Losses;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods.Volume;

/// <summary>
/// Cross pseudo supervision in 3D (Chen et al., CVPR 2021), after SSL4MIS train_cross_pseudo_supervision_3D.py: two 3D
/// networks of the same architecture, initialised differently (created one after the other from the seeded
/// generator), each trained with 0.5·(CE + Dice) on labeled patches plus λ(t)·CE against the other's argmax on the
/// unlabeled patches; λ(t) = 0.1·sigmoid_rampup(t // 150, rampup). The first network is the inference network.
/// Deliberate differences: none beyond the all-class Dice of <see cref="VolumeSupervisedMethod"/>.
/// </summary>
public sealed class VolumeCrossPseudoSupervisionMethod : IVolumeMethod
{
    readonly double _consistency, _rampup;

    public VolumeCrossPseudoSupervisionMethod(VolumeMethodContext c)
    {
        _consistency = c.Settings.Double("consistency", 0.1);
        _rampup = c.Settings.Double("rampup", 200);
        Net1 = c.CreateNetwork();
        Net2 = c.CreateNetwork();
    }

    public string Name => "cps";
    public nn.Module<Tensor, Tensor> Net1 { get; }
    public nn.Module<Tensor, Tensor> Net2 { get; }
    public nn.Module<Tensor, Tensor> InferenceNetwork => Net1;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Net1, Net2 };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Net1, Net2 };

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long nu = images.shape[0] - labeledCount;
        var o1 = Net1.forward(images);
        var o2 = Net2.forward(images);
        var sup = SegmentationLosses.CeDice(o1.narrow(0, 0, labeledCount), labels) + SegmentationLosses.CeDice(o2.narrow(0, 0, labeledCount), labels);
        double w = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        if (nu == 0) return new MethodStep(sup, new Dictionary<string, Tensor> { ["sup"] = sup });
        var u1 = o1.narrow(0, labeledCount, nu); var u2 = o2.narrow(0, labeledCount, nu);
        Tensor p1, p2;
        using (no_grad()) { p1 = ClassIndex.Of(u1); p2 = ClassIndex.Of(u2); }
        var cross = functional.cross_entropy(u1, p2) + functional.cross_entropy(u2, p1);
        return new MethodStep(sup + w * cross, new Dictionary<string, Tensor> { ["sup"] = sup, ["cps"] = cross });
    }

    public void Dispose() { Net1.Dispose(); Net2.Dispose(); }
}
