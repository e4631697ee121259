using SemiSeg.Geometry;
using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

public class BuildingBlockTests
{
    [Fact]
    public void SharpenRaisesToOneOverTAndRenormalises()
    {
        var p = tensor(new float[] { 0.8f, 0.2f }, new long[] { 1, 2, 1, 1 });
        var s = PseudoLabels.Sharpen(p, 0.5);
        Assert.Equal(0.64 / 0.68, s[0, 0, 0, 0].item<float>(), 5);
        Assert.Equal(0.04 / 0.68, s[0, 1, 0, 0].item<float>(), 5);
    }

    [Fact]
    public void LowConfidencePixelsAreIgnoredNotBackground()
    {
        // pixel 0: [0.1, 0.9] -> class 1; pixel 1: [0.6, 0.4] -> below 0.7 -> ignore
        var p = tensor(new float[] { 0.1f, 0.6f, 0.9f, 0.4f }, new long[] { 1, 2, 1, 2 });
        var (labels, mask) = PseudoLabels.Confident(p, 0.7);
        Assert.Equal(new long[] { 1, 255 }, labels.data<long>().ToArray());
        Assert.Equal(new float[] { 1, 0 }, mask.data<float>().ToArray());
    }

    [Fact]
    public void LargestComponentKeepsTheBiggestBlobPerClass()
    {
        // 1 1 0 0 1
        // 1 0 0 0 0
        // 0 0 2 0 0
        // 0 0 0 1 0     <- touches nothing of class 1 by faces; diagonally touches nothing either
        var m = new byte[] { 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0 };
        var kept = ConnectedComponents.LargestComponent(m, 1, 4, 5, 3, perSlice: true);
        Assert.Equal(new byte[] { 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0 }, kept);
        // diagonal neighbours join under full connectivity only
        var diag = new byte[] { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0 };
        var full = ConnectedComponents.LargestComponent(diag, 1, 4, 4, 2, perSlice: true, fullConnectivity: true);
        var face = ConnectedComponents.LargestComponent(diag, 1, 4, 4, 2, perSlice: true, fullConnectivity: false);
        Assert.Equal(diag, full);
        Assert.Equal(2, face.Count(v => v == 1));
        // per slice: each slice keeps its own largest blob
        var two = m.Concat(m).ToArray();
        Assert.Equal(kept.Concat(kept).ToArray(), ConnectedComponents.LargestComponent(two, 2, 4, 5, 3, perSlice: true));
    }

    [Fact]
    public void CutMixBoxAndBcpMaskHaveTheReferenceGeometry()
    {
        var rng = new Random(1);
        for (int i = 0; i < 50; i++)
        {
            var box = Perturbations.CutMixBox(40, 50, rng, p: 1.0);
            int area = box.Count(v => v == 1);
            Assert.InRange(area, 1, (int)(0.4 * 2000) + 1);
            var rows = Enumerable.Range(0, 40).Where(y => Enumerable.Range(0, 50).Any(x => box[y * 50 + x] == 1)).ToArray();
            var cols = Enumerable.Range(0, 50).Where(x => Enumerable.Range(0, 40).Any(y => box[y * 50 + x] == 1)).ToArray();
            Assert.Equal(rows.Length * cols.Length, area); // a filled rectangle
        }
        Assert.All(Perturbations.CutMixBox(8, 8, rng, p: 0.0), v => Assert.Equal(0f, v));
        var bcp = Perturbations.BcpMask(30, 24, new Random(2));
        Assert.Equal(20 * 16, bcp.Count(v => v == 0));
    }

    [Fact]
    public void BlurKeepsConstantsAndStrongAugmentationStaysInRange()
    {
        var c = full(new long[] { 1, 1, 16, 16 }, 0.3f);
        Assert.True(Perturbations.GaussianBlur(c, 1.5).allclose(c, atol: 1e-6));
        var impulse = zeros(1, 1, 15, 15); impulse[0, 0, 7, 7] = tensor(1f);
        var b = Perturbations.GaussianBlur(impulse, 1.0);
        Assert.Equal(1.0, b.sum().item<float>(), 4);
        Assert.Equal(b[0, 0, 6, 7].item<float>(), b[0, 0, 8, 7].item<float>(), 6);
        var x = rand(4, 1, 16, 16);
        var s = Perturbations.Strong(x, new Random(3));
        Assert.Equal(x.shape, s.shape);
        Assert.InRange(s.min().item<float>(), 0f, 1f);
        Assert.InRange(s.max().item<float>(), 0f, 1f);
    }

    [Fact]
    public void UaMtThresholdUsesLnCAndUncertaintyIsBounded()
    {
        torch.manual_seed(1);
        using var m = new UncertaintyAwareMeanTeacherMethod(new UNetConfig(), new MethodSettings());
        Assert.Equal((0.75 + 0.25 * Math.Exp(-5)) * Math.Log(4), m.Threshold(0, 1000), 10);
        Assert.Equal(Math.Log(4), m.Threshold(1000, 1000), 10);
        using var ref2 = new UncertaintyAwareMeanTeacherMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["ln2_threshold"] = "true" }));
        Assert.Equal(Math.Log(2), ref2.Threshold(1000, 1000), 10);
        var u = m.Uncertainty(randn(2, 1, 32, 32));
        Assert.Equal(new long[] { 2, 1, 32, 32 }, u.shape);
        Assert.InRange(u.max().item<float>(), 0f, (float)Math.Log(4) + 1e-4f);
        Assert.InRange(u.min().item<float>(), -1e-5f, (float)Math.Log(4));
    }

    [Fact]
    public void CpsAbdCadUseTheDefaultInitialisationAndReferenceInitRestoresTheDroppedPair()
    {
        // SSL4MIS's 2D CPS at HEAD: model1 = create_model(); model2 = create_model() (commit 9a74d15 dropped the pair)
        torch.manual_seed(5);
        using var reference = new CrossPseudoSupervisionMethod(new UNetConfig(), new MethodSettings());
        var pairOn = new MethodSettings(new Dictionary<string, string> { ["reference_init"] = "true" });
        using var pair = new CrossPseudoSupervisionMethod(new UNetConfig(), pairOn);
        pairOn.EnsureAllUsed("cps");
        // first conv (fan-in 9): libtorch's default (Kaiming-uniform, a = √5) std 1/√27 ≈ 0.19; Kaiming-normal √(2/9) ≈ 0.47;
        // Xavier-normal √(2/(9+144)) ≈ 0.11 (fan-out 16·9)
        double Std(Segmenter2D n) => n.parameters().First().std().item<float>();
        Assert.InRange(Std(reference.Net1), 0.12, 0.26);
        Assert.InRange(Std(reference.Net2), 0.12, 0.26);
        Assert.False(reference.Net1.parameters().First().allclose(reference.Net2.parameters().First()));
        Assert.InRange(Std(pair.Net1), 0.35, 0.6);
        Assert.InRange(Std(pair.Net2), 0.07, 0.15);
        // ABD / CAD take the same switch, off by default (their reference's second network is a pretrained Swin-UNet)
        var on = new MethodSettings(new Dictionary<string, string> { ["reference_init"] = "true" });
        using var abd = new AdaptiveDisplacementMethod(new UNetConfig(), new MethodSettings(), cad: false);
        using var cadReference = new AdaptiveDisplacementMethod(new UNetConfig(), on, cad: true);
        Assert.InRange(Std(abd.Net1), 0.12, 0.26);
        Assert.InRange(Std(cadReference.Net1), 0.35, 0.6);
        Assert.False(abd.Net1.parameters().First().allclose(abd.Net2.parameters().First()));
        on.EnsureAllUsed("cad");
    }

    [Fact]
    public void CpsTrainsBothNetworksThroughEachOthersPseudoLabels()
    {
        torch.manual_seed(2);
        using var m = new CrossPseudoSupervisionMethod(new UNetConfig(), new MethodSettings());
        Assert.False(m.Net1.parameters().First().allclose(m.Net2.parameters().First()));
        var step = m.Step(randn(4, 1, 32, 32), randint(0, 4, new long[] { 2, 32, 32 }).to_type(ScalarType.Int64), 2, new TrainingContext(30000, 30000, 0.01));
        Assert.True(step.Terms["cps"].item<float>() > 0);
        step.Loss.backward();
        Assert.True(m.Net2.parameters().First().grad!.abs().sum().item<float>() > 0);
        Assert.True(m.Net1.parameters().First().grad!.abs().sum().item<float>() > 0);
    }
}

public class UniMatchAndBcpTests
{
    static Tensor Labels(int n, int size) => randint(0, 4, new long[] { n, size, size }).to_type(ScalarType.Int64);

    [Fact]
    public void FeaturePerturbationWithoutDropoutIsTheCleanPass()
    {
        torch.manual_seed(1);
        using var net = new UNet2D(new UNetConfig());
        net.eval();
        var x = randn(2, 1, 32, 32);
        var (clean, fp) = net.ForwardWithFeaturePerturbation(x, 0.0);
        Assert.True(clean.allclose(fp, atol: 1e-6));
        Assert.True(clean.allclose(net.forward(x), atol: 1e-5));
    }

    [Fact]
    public void UniMatchIgnoresEverythingBelowTheThreshold()
    {
        torch.manual_seed(2);
        var settings = new MethodSettings(new Dictionary<string, string> { ["conf_thresh"] = "1.01" });
        using var m = new UniMatchMethod(new UNetConfig(), settings);
        var step = m.Step(rand(4, 1, 32, 32), Labels(2, 32), 2, new TrainingContext(5, 100, 0.01));
        Assert.Equal(0f, step.Terms["s1"].item<float>(), 6);
        Assert.Equal(0f, step.Terms["s2"].item<float>(), 6);
        Assert.Equal(0f, step.Terms["fp"].item<float>(), 6);
        Assert.Equal(step.Terms["sup"].item<float>() / 2, step.Loss.item<float>(), 5);
        var m2 = new UniMatchMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["conf_thresh"] = "0" }));
        var s2 = m2.Step(rand(4, 1, 32, 32), Labels(2, 32), 2, new TrainingContext(5, 100, 0.01));
        Assert.True(s2.Terms["fp"].item<float>() > 0);
        s2.Loss.backward();
        Assert.True(m2.Network.parameters().First().grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void BcpMixLossWithAFullMaskIsThePlainLoss()
    {
        var logits = randn(2, 4, 16, 16);
        var a = Labels(2, 16); var b = Labels(2, 16);
        var (dice, ce) = BidirectionalCopyPasteMethod.MixLoss(logits, a, b, ones(2, 16, 16), 1.0, 1.0);
        // the empty outside region contributes Dice 0 (1 - 1e-5/1e-5) and CE 0
        Assert.Equal(SemiSeg.Losses.SegmentationLosses.Dice(nn.functional.softmax(logits, 1), a).item<float>(), dice.item<float>(), 5);
        Assert.Equal(SemiSeg.Losses.SegmentationLosses.CrossEntropy(logits, a).item<float>(), ce.item<float>(), 4);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void BcpMixLossIsTheTwoMaskedDiceAndCeCalls(bool channelsLast, bool volume)
    {
        // the fused form against the reference's composition (a masked Dice and a masked CE per region, each with
        // its own target and weight), in float64 so that only summation order separates them: ~1e-15 relative for
        // sums of ~2 000 terms, so 1e-10 leaves room and still fails any change in what is summed
        torch.manual_seed(11);
        long[] spatial = volume ? new long[] { 6, 8, 8 } : new long[] { 16, 16 };
        var shape = new long[] { 2, 4 }.Concat(spatial).ToArray();
        var logits0 = randn(shape, dtype: ScalarType.Float64) * 3;
        if (channelsLast) logits0 = MemoryLayout.ToChannelsLast(logits0);
        var labelShape = new long[] { 2 }.Concat(spatial).ToArray();
        var inside = randint(0, 4, labelShape); var outside = randint(0, 4, labelShape);
        var mask = (rand(labelShape) > 0.4).to_type(ScalarType.Float64);
        var fusedLogits = logits0.detach().requires_grad_(true);
        var refLogits = logits0.detach().requires_grad_(true);
        var (dice, ce) = BidirectionalCopyPasteMethod.MixLoss(fusedLogits, inside, outside, mask, 0.5, 1.0);
        var probs = nn.functional.softmax(refLogits, 1);
        var refDice = SemiSeg.Losses.SegmentationLosses.Dice(probs, inside, mask) * 0.5 + SemiSeg.Losses.SegmentationLosses.Dice(probs, outside, 1 - mask);
        var refCe = SemiSeg.Losses.SegmentationLosses.CrossEntropy(refLogits, inside, mask) * 0.5 + SemiSeg.Losses.SegmentationLosses.CrossEntropy(refLogits, outside, 1 - mask);
        Assert.Equal(refDice.item<double>(), dice.item<double>(), 1e-10);
        Assert.Equal(refCe.item<double>(), ce.item<double>(), 1e-10);
        (dice + 2 * ce).backward();
        (refDice + 2 * refCe).backward();
        Assert.True((fusedLogits.grad! - refLogits.grad!).abs().max().item<double>() < 1e-12);
        Assert.True(refLogits.grad!.abs().max().item<double>() > 1e-6);
        // a soft mask is not a copy-paste region
        Assert.Throws<ArgumentException>(() => BidirectionalCopyPasteMethod.MixLoss(fusedLogits, inside, outside, mask * 0.5, 1.0, 1.0));
    }

    [Fact]
    public void BcpPretrainsOnLabeledThenSelfTrainsFromThePretrainedTeacher()
    {
        torch.manual_seed(3);
        var settings = new MethodSettings(new Dictionary<string, string> { ["pretrain_iterations"] = "2" });
        using var m = new BidirectionalCopyPasteMethod(new UNetConfig(), settings);
        using var opt = optim.SGD(m.Student.parameters(), 0.01, momentum: 0.9);
        var x = rand(8, 1, 32, 32); var y = Labels(4, 32);
        var teacher0 = m.Teacher.parameters().First().clone();
        SemiSeg.Training.Trainer.Step(m, opt, x, y, 4, new TrainingContext(0, 10, 0.01));
        Assert.True(teacher0.allclose(m.Teacher.parameters().First())); // no EMA during pre-training
        SemiSeg.Training.Trainer.Step(m, opt, x, y, 4, new TrainingContext(1, 10, 0.01));
        var studentAtSwitch = m.Student.parameters().First().clone();
        var step = SemiSeg.Training.Trainer.Step(m, opt, x, y, 4, new TrainingContext(2, 10, 0.01));
        // at the switch the teacher starts from the pre-trained student, then moves by EMA toward the updated student
        var expected = 0.99 * studentAtSwitch + 0.01 * m.Student.parameters().First();
        Assert.True(expected.allclose(m.Teacher.parameters().First(), atol: 1e-6));
        Assert.True(step.Terms["dice"].item<float>() > 0);
    }
}

public class CutoutTests
{
    [Fact]
    public void CutoutZeroesExactlyItsBox()
    {
        var x = rand(3, 1, 20, 20) + 0.5f;
        var (y, boxes) = Perturbations.Cutout(x, new Random(4), p: 1.0);
        var inside = boxes.unsqueeze(1).to_type(ScalarType.Bool);
        Assert.True(boxes.sum().item<float>() > 0);
        Assert.Equal(0f, y.masked_select(inside).abs().sum().item<float>());
        Assert.True(y.masked_select(inside.logical_not()).allclose(x.masked_select(inside.logical_not())));
    }
}
