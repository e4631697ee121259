using SemiSeg.Data;
using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

/// <summary>Every 2D method trains any 2D network (`--network`): built from the registry with the network kind, one
/// optimisation step's loss is finite and reaches every trainable parameter of the inference network.</summary>
public class AnyNetworkTests
{
    public static IEnumerable<object[]> Cases() =>
        MethodRegistry.Slices.SelectMany(e => new[] { Net2DKind.Resunet, Net2DKind.Resnet18Unet }.Select(k => new object[] { e.Name, k }));

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryMethodTrainsTheChosenNetwork(string name, Net2DKind kind)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(5);
        var settings = new MethodSettings(name == "bcp" || name == "action" || name == "m3hl" ? new Dictionary<string, string> { ["pretrain_iterations"] = "0" } : null);
        using var method = MethodRegistry.Get(name).Create(new UNetConfig { NumClasses = 3, Kind = kind }, settings);
        Assert.Equal(kind, method.InferenceNetwork.Config.Kind);
        Assert.IsType(kind == Net2DKind.Resunet ? typeof(ResUNet2D) : typeof(ResNetUNet2D), method.InferenceNetwork);
        method.Train(true);
        // the smallest size that leaves the encoder's bottleneck 2x2 (BN in train mode needs more than one value)
        int s = 2 * Segmenter2D.SizeMultiple(kind);
        var images = randn(4, 1, s, s);
        var labels = zeros(2, s, s, ScalarType.Int64);
        labels[TensorIndex.Colon, TensorIndex.Slice(s / 4, 3 * s / 4), TensorIndex.Slice(s / 4, 3 * s / 4)] = tensor(1L);
        labels[TensorIndex.Colon, TensorIndex.Slice(3 * s / 8, 5 * s / 8), TensorIndex.Slice(3 * s / 8, 5 * s / 8)] = tensor(2L);
        var meta = Enumerable.Range(0, 4).Select(i => new MetaLabels($"p{i % 2}", i < 2 ? "ED" : "ES", i, 4)).ToArray();
        var ctx = new TrainingContext(2000, 4000, 0.01) { Meta = meta };
        var step = method.Step(images, labels, 2, ctx);
        Assert.True(double.IsFinite(step.Loss.item<float>()), $"{name} on {kind}: loss {step.Loss.item<float>()}");
        step.Loss.backward();
        var head = method.InferenceNetwork.OutputConv.weight!;
        Assert.NotNull(head.grad);
    }
}
