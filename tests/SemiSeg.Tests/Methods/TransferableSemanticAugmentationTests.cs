using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using M = SemiSeg.Methods.TransferableSemanticAugmentationMethod;

namespace SemiSeg.Tests.Methods;

public class TransferableSemanticAugmentationTests
{
    [Fact]
    public void OffsetsHaveTheClosedForm()
    {
        // two classes, one feature, 1x1 kernel: W0 = 1, W1 = 3, Σ = 2 for both classes, λ = 1
        var kernel = tensor(new float[] { 1, 3 }).reshape(2, 1, 1, 1);
        var cov = full(new long[] { 2, 1, 1 }, 2f);
        var a = M.AugmentationOffsets(kernel, zeros(2, 1), cov, 1.0);
        Assert.Equal(new float[] { 0, 4, 4, 0 }, a.flatten().data<float>().ToArray());
        // a mean shift of 0.5 for class 1: A[0,1] = (W0 − W1)·0.5 + 4 = 3; A[1,0] unchanged
        var shifted = M.AugmentationOffsets(kernel, tensor(new float[] { 0, 0.5f }).reshape(2, 1), cov, 1.0);
        Assert.Equal(new float[] { 0, 3, 4, 0 }, shifted.flatten().data<float>().ToArray());
    }

    [Fact]
    public void AugmentedLossBoundsTheExpectedCrossEntropyFromAbove()
    {
        torch.manual_seed(2);
        // 1x1 classifier over F = 3 features, 3 classes; one pixel of class 1 with feature f
        var kernel = randn(3, 3, 1, 1); var bias = randn(3);
        var f = randn(3);
        var l = randn(3, 3) * 0.7; var sigma = l.matmul(l.t());
        var covs = stack(new[] { eye(3), sigma, eye(3) });
        var shift = tensor(new float[] { 0, 0, 0, 0.3f, -0.2f, 0.1f, 0, 0, 0 }).reshape(3, 3);
        var logits = (kernel.reshape(3, 3).matmul(f) + bias).reshape(1, 3, 1, 1);
        var target = tensor(new long[] { 1 }).reshape(1, 1, 1);
        double bound = M.AugmentedCrossEntropy(logits, target, M.AugmentationOffsets(kernel, shift, covs, 1.0)).item<float>();
        // Monte Carlo: δ ~ N(shift_1, Σ_1)
        var chol = linalg.cholesky(sigma);
        var deltas = randn(20000, 3).matmul(chol.t()) + shift[1];
        var z = (f + deltas).matmul(kernel.reshape(3, 3).t()) + bias;
        double expected = nn.functional.cross_entropy(z, full(new long[] { 20000 }, 1L)).item<float>();
        Assert.True(bound >= expected - 1e-3, $"bound {bound} < E[CE] {expected}");
        Assert.True(bound < expected + 5, "the bound should not be vacuous");
        // zero offsets: the plain cross-entropy; ignored pixels do not count
        Assert.Equal(nn.functional.cross_entropy(logits, target).item<float>(), M.AugmentedCrossEntropy(logits, target, zeros(3, 3)).item<float>(), 5);
        Assert.Equal(0f, M.AugmentedCrossEntropy(logits, full(new long[] { 1, 1, 1 }, 255L), zeros(3, 3)).item<float>());
    }

    [Fact]
    public void MemoryCopiesFirstThenBlends()
    {
        using var mem = new ClassStatistics(2, 2);
        var fs = tensor(new float[] { 1, 3, 5, 7, 2, 4, 6, 8 }).reshape(1, 2, 2, 2);   // channels: [1,3,5,7], [2,4,6,8]
        var targets = tensor(new long[] { 0, 0, 1, 255 }).reshape(1, 2, 2);
        mem.Update(fs, fs * 2, targets, 0.9, 100, new Random(1));
        Assert.Equal(new float[] { 2, 3 }, mem.StudentMean[0].data<float>().ToArray());
        Assert.Equal(new float[] { 4, 6 }, mem.TeacherMean[0].data<float>().ToArray());
        // teacher features of class 0: (2,4) and (6,8): covariance [[8, 8], [8, 8]]
        Assert.Equal(new float[] { 8, 8, 8, 8 }, mem.TeacherCovariance[0].flatten().data<float>().ToArray());
        Assert.Equal(new float[] { 0, 0 }, mem.StudentMean[1].data<float>().ToArray()); // one pixel only: not updated
        mem.Update(fs * 0, fs * 0, targets, 0.9, 100, new Random(1));
        Assert.Equal(0.9f * 2, mem.StudentMean[0][0].item<float>(), 5);
    }

    [Fact]
    public void StepTrainsTheStudentThroughTheAugmentedLoss()
    {
        torch.manual_seed(3);
        using var m = new M(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["conf_thresh"] = "0", ["rampup"] = "0" }));
        var step = m.Step(rand(4, 1, 32, 32), randint(0, 4, new long[] { 2, 32, 32 }).to_type(ScalarType.Int64), 2, new TrainingContext(50, 100, 0.01));
        Assert.True(step.Terms["tsa_u"].item<float>() > 0 && step.Terms["tsa_l"].item<float>() > 0);
        step.Loss.backward();
        Assert.True(m.Student.OutputConv.weight!.grad!.abs().sum().item<float>() > 0);
        Assert.True(m.Student.parameters().First().grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void UnlabeledWeightIsTheHeadersTenthOfTheSigmoidRamp()
    {
        // w(t) = 0.1·sigmoid_rampup(t // 150, 200): exp(−5) at the start, 0.1·exp(−5·(1−100/200)²) at t = 15 000, 0.1 after
        using var m = new TransferableSemanticAugmentationMethod(new UNetConfig(), new MethodSettings());
        Assert.Equal(0.1 * Math.Exp(-5), m.UnlabeledWeight(0), 12);
        Assert.Equal(0.1 * Math.Exp(-5 * 0.25), m.UnlabeledWeight(15000), 12);
        Assert.Equal(0.1, m.UnlabeledWeight(30000), 12);
        using var old = new TransferableSemanticAugmentationMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["consistency"] = "1" }));
        Assert.Equal(1.0, old.UnlabeledWeight(30000), 12);
    }
}
