using SemiSeg.Losses;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// Cross Pseudo Supervision (Chen et al., CVPR 2021) as SSL4MIS train_cross_pseudo_supervision_2D.py runs it at HEAD:
/// two UNets created with the framework's default initialisation (two independent draws), each trained with
/// 0.5·(CE + Dice) on labeled images plus λ(t)·CE(own logits, argmax of the other network) on unlabeled images,
/// λ(t) = 0.1·sigmoid_rampup(t // 150, 200). Network 1 is the one evaluated and saved as best.
/// SSL4MIS commit 9a74d15 (2021-12-16, "fixed a bug for CPS") replaced the 2D script's Kaiming-normal / Xavier-normal
/// pair with <c>create_model()</c> for both networks (the 3D script still uses the pair). <c>reference_init=true</c>
/// brings the old pair back (Kaiming-normal conv weights for network 1, Xavier-normal for network 2); it was this
/// toolkit's default until issue 18, and rows of docs/results.md measured before then used it. Behind BatchNorm,
/// larger initial weights mean a smaller effective step (lr/‖w‖²); the Kaiming-normal weights are about 2.4× the
/// default's scale, which slows short schedules down (cps-3 vs cps-defaultinit-3 in docs/results.md).
/// Remaining departures from the reference, none of which changes an update: the two SGD optimizers with equal
/// settings are one SGD over both parameter sets (SGD is per-parameter, so the updates are identical); libtorch's
/// default initialisation is PyTorch's (Kaiming-uniform, a = √5), drawn from libtorch's RNG, not PyTorch's; the
/// reference also sets lr = 0.01·0.1^(t/2500) for the single iteration after every 2500th (its poly update
/// overwrites it on the next), which this toolkit's poly schedule does not reproduce.
/// </summary>
public sealed class CrossPseudoSupervisionMethod : ISegmentationMethod
{
    readonly double _consistency, _rampup;

    public CrossPseudoSupervisionMethod(UNetConfig config, MethodSettings settings)
    {
        _consistency = settings.Double("consistency", 0.1);
        _rampup = settings.Double("rampup", 200);
        bool referenceInit = settings.Bool("reference_init", false);
        Net1 = Segmenter2D.Create(config);
        Net2 = Segmenter2D.Create(config);
        if (referenceInit) ReferenceInit(Net1, Net2);
    }

    /// <summary>The initialisation SSL4MIS's 2D CPS used before commit 9a74d15 (and its 3D CPS still uses); CPS, ABD
    /// and CAD apply it with reference_init=true: Kaiming-normal conv weights for the first network, Xavier-normal for
    /// the second.</summary>
    public static void ReferenceInit(Segmenter2D kaiming, Segmenter2D xavier)
    {
        using var _ = no_grad();
        foreach (var (_, p) in kaiming.named_parameters()) if (p.dim() == 4) init.kaiming_normal_(p);
        foreach (var (_, p) in xavier.named_parameters()) if (p.dim() == 4) init.xavier_normal_(p);
    }

    public string Name => "cps";
    public Segmenter2D Net1 { get; }
    public Segmenter2D Net2 { get; }
    public Segmenter2D InferenceNetwork => Net1;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Net1, Net2 };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Net1, Net2 };

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        var o1 = Net1.forward(images); var o2 = Net2.forward(images);
        double w = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        var t = Losses(o1, o2, labels, labeledCount, w);
        var loss = t["loss"]; t.Remove("loss");
        return new MethodStep(loss, t);
    }

    /// <summary>One iteration's loss from the two networks' logits on the batch (labeled first): sup1, sup2 =
    /// 0.5·(CE + Dice) on the labeled part, cps = CE(o₁ᵤ, argmax o₂ᵤ) + CE(o₂ᵤ, argmax o₁ᵤ), loss = sup1 + sup2 + w·cps.</summary>
    public static Dictionary<string, Tensor> Losses(Tensor o1, Tensor o2, Tensor labels, long labeledCount, double w)
    {
        long nu = o1.shape[0] - labeledCount;
        var sup1 = SegmentationLosses.CeDice(o1.narrow(0, 0, labeledCount), labels);
        var sup2 = SegmentationLosses.CeDice(o2.narrow(0, 0, labeledCount), labels);
        if (nu == 0) return new Dictionary<string, Tensor> { ["sup1"] = sup1, ["sup2"] = sup2, ["loss"] = sup1 + sup2 };
        var u1 = o1.narrow(0, labeledCount, nu); var u2 = o2.narrow(0, labeledCount, nu);
        var pseudo1 = ClassIndex.Of(u1.detach()); var pseudo2 = ClassIndex.Of(u2.detach());
        var cps = SegmentationLosses.CrossEntropy(u1, pseudo2) + SegmentationLosses.CrossEntropy(u2, pseudo1);
        return new Dictionary<string, Tensor> { ["sup1"] = sup1, ["sup2"] = sup2, ["cps"] = cps, ["loss"] = sup1 + sup2 + w * cps };
    }

    public void Dispose() { Net1.Dispose(); Net2.Dispose(); }
}
