using SemiSeg.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Losses;

public class LossTests
{
    // Two classes, one image of 1x2 pixels: p = [[0.8, 0.4], [0.2, 0.6]] (class x pixel), target = [0, 1]
    static Tensor Probs() => tensor(new float[] { 0.8f, 0.4f, 0.2f, 0.6f }, new long[] { 1, 2, 1, 2 });
    static Tensor Target() => tensor(new long[] { 0, 1 }, new long[] { 1, 1, 2 });

    [Fact]
    public void DiceUsesSquaredDenominatorsOverTheBatch()
    {
        // class 0: I = 0.8, Σp² = 0.64 + 0.16 = 0.8, Σt = 1 -> 1 - 1.6/1.8; class 1: I = 0.6, Σp² = 0.04 + 0.36 = 0.4, Σt = 1 -> 1 - 1.2/1.4
        double expected = 0.5 * ((1 - (1.6 + 1e-5) / (1.8 + 1e-5)) + (1 - (1.2 + 1e-5) / (1.4 + 1e-5)));
        using var loss = SegmentationLosses.Dice(Probs(), Target());
        Assert.Equal(expected, loss.item<float>(), 5);
    }

    [Fact]
    public void WeightMaskAndIgnoreIndexDropPixels()
    {
        // weight only the first pixel: class 0: I = 0.8, Σp² = 0.64, Σt = 1; class 1: I = 0, Σp² = 0.04, Σt = 0
        var w = tensor(new float[] { 1, 0 }, new long[] { 1, 1, 2 });
        double expected = 0.5 * ((1 - (1.6 + 1e-5) / (1.64 + 1e-5)) + (1 - 1e-5 / (0.04 + 1e-5)));
        Assert.Equal(expected, SegmentationLosses.Dice(Probs(), Target(), w).item<float>(), 5);
        var ignored = tensor(new long[] { 0, 255 }, new long[] { 1, 1, 2 });
        Assert.Equal(expected, SegmentationLosses.Dice(Probs(), ignored, ignoreIndex: 255).item<float>(), 5);
    }

    [Fact]
    public void WeightedCrossEntropyIsTheWeightedMean()
    {
        var logits = tensor(new float[] { 2, 0, 0, 1 }, new long[] { 1, 2, 1, 2 });
        var t = Target();
        double ce0 = -Math.Log(Math.Exp(2) / (Math.Exp(2) + 1)), ce1 = -Math.Log(Math.E / (1 + Math.E));
        Assert.Equal((ce0 + ce1) / 2, SegmentationLosses.CrossEntropy(logits, t).item<float>(), 5);
        var w = tensor(new float[] { 3, 1 }, new long[] { 1, 1, 2 });
        Assert.Equal((3 * ce0 + ce1) / 4, SegmentationLosses.CrossEntropy(logits, t, w).item<float>(), 5);
        Assert.Equal(ce0, SegmentationLosses.CrossEntropy(logits, tensor(new long[] { 0, 255 }, new long[] { 1, 1, 2 }), ignoreIndex: 255).item<float>(), 5);
    }

    [Fact]
    public void CeDiceGradientFlows()
    {
        var logits = randn(2, 4, 8, 8).requires_grad_(true);
        var t = randint(0, 4, new long[] { 2, 8, 8 }).to_type(ScalarType.Int64);
        var loss = SegmentationLosses.CeDice(logits, t);
        loss.backward();
        Assert.True(logits.grad!.abs().sum().item<float>() > 0);
    }
}
