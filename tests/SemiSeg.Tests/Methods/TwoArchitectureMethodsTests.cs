using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

public class TwoArchitectureMethodsTests
{
    static Tensor Labels(int n, int size) => randint(0, 4, new long[] { n, size, size }).to_type(ScalarType.Int64);

    [Fact]
    public void ResUNetGivesLogitsAndFeaturesOfTheUNetShapes()
    {
        torch.manual_seed(1);
        using var net = new ResUNet2D(new UNetConfig());
        var (logits, high, low) = net.ForwardWithFeatures(randn(2, 1, 32, 32));
        Assert.Equal(new long[] { 2, 4, 32, 32 }, logits.shape);
        Assert.Equal(new long[] { 2, 256, 2, 2 }, high.shape);
        Assert.Equal(new long[] { 2, 16, 32, 32 }, low.shape);
    }

    [Fact]
    public void CompetitionLossMixesCrossEntropyAndDice()
    {
        var l1 = randn(2, 4, 8, 8); var l2 = randn(2, 4, 8, 8); var y = Labels(2, 8);
        float ce = SemiSeg.Losses.SegmentationLosses.CrossEntropy(l1, y).item<float>() + SemiSeg.Losses.SegmentationLosses.CrossEntropy(l2, y).item<float>();
        float dice = SemiSeg.Losses.SegmentationLosses.Dice(nn.functional.softmax(l1, 1), y).item<float>() + SemiSeg.Losses.SegmentationLosses.Dice(nn.functional.softmax(l2, 1), y).item<float>();
        Assert.Equal(ce, ComplementaryCompetitionMethod.CompetitionLoss(new[] { l1, l2 }, y, 1.0).item<float>(), 4);
        Assert.Equal(dice, ComplementaryCompetitionMethod.CompetitionLoss(new[] { l1, l2 }, y, 0.0).item<float>(), 4);
        Assert.Equal(0.8f * ce + 0.2f * dice, ComplementaryCompetitionMethod.CompetitionLoss(new[] { l1, l2 }, y, 0.8).item<float>(), 4);
    }

    [Fact]
    public void OutcomeContrastHasTheClosedFormOnAgreedSeparatedProjections()
    {
        // foreground pixels project to e0, background to e1 in both networks; K anchors: CE = −log(e^{1/T}/(e^{1/T} + K))
        var fg = tensor(new[] { true, true, false, false }).reshape(1, 2, 2);
        var z = stack(new[] { fg.to_type(ScalarType.Float32), fg.logical_not().to_type(ScalarType.Float32) }, 1);
        int k = 8; double t = 0.1;
        var loss = ComplementaryCompetitionMethod.OutcomeContrast(z, z, fg, fg.logical_not(), k, t, new Random(1)).item<float>();
        Assert.Equal(-Math.Log(Math.Exp(1 / t) / (Math.Exp(1 / t) + k)), loss, 4);
        Assert.Equal(0f, ComplementaryCompetitionMethod.OutcomeContrast(z, z, fg, zeros_like(fg), k, t, new Random(1)).item<float>());
    }

    [Fact]
    public void C3s3TrainsBothNetworksAndTheBetterOneTeaches()
    {
        torch.manual_seed(2);
        foreach (var form in new[] { "reference", "former" })
        {
            using var m = new ComplementaryCompetitionMethod(new UNetConfig(), MethodSettings.Parse(new[] { "rampup=0", $"form={form}" }));
            var step = m.Step(rand(4, 1, 32, 32), Labels(2, 32), 2, new TrainingContext(10, 100, 0.01));
            bool aTeaches = step.Terms["a_teaches"].item<float>() == 1f;
            if (form == "reference") Assert.Equal(step.Terms["sel_a"].item<float>() < step.Terms["sel_b"].item<float>(), aTeaches);
            else Assert.Equal(step.Terms["comp_a"].item<float>() <= step.Terms["comp_b"].item<float>(), aTeaches);
            Assert.True(step.Terms["dcc"].item<float>() > 0 && step.Terms[form == "reference" ? "cos_a" : "cos"].item<float>() > 0 && step.Terms["odcl"].item<float>() > 0);
            step.Loss.backward();
            Assert.True(m.NetA.parameters().First().grad!.abs().sum().item<float>() > 0);
            Assert.True(m.NetB.parameters().First().grad!.abs().sum().item<float>() > 0);
            Assert.True(m.ProjA.parameters().First().grad!.abs().sum().item<float>() > 0);
        }
    }

    [Fact]
    public void EvidentialLossesHaveTheirClosedForms()
    {
        Assert.Equal(0f, MutualEvidentialMethod.KlToUniform(ones(1, 3, 1, 1)).item<float>(), 5);
        // α = (2, 1), y = class 0: ψ(3) − ψ(2) = 1/2; α̃ = (1, 1) has no misleading evidence
        var alpha = tensor(new float[] { 2, 1 }).reshape(1, 2, 1, 1);
        var y0 = tensor(new float[] { 1, 0 }).reshape(1, 2, 1, 1);
        Assert.Equal(0.5f, MutualEvidentialMethod.LabeledEvidentialLoss(alpha, y0, 1.0).item<float>(), 5);
        // y = class 1: misleading evidence on class 0 is penalised by the KL term
        var y1 = tensor(new float[] { 0, 1 }).reshape(1, 2, 1, 1);
        Assert.True(MutualEvidentialMethod.LabeledEvidentialLoss(alpha, y1, 1.0).item<float>() > 1.0f + 0.1f);
        // equal α: Fisher weights are 1 and the loss is Sensoy's MSE: 0.25 + 0.25 + 2·0.25/3
        Assert.Equal(0.5f + 0.5f / 3, MutualEvidentialMethod.FisherEvidentialLoss(ones(1, 2, 1, 1), y0).item<float>(), 5);
    }

    [Fact]
    public void DempsterCombinationMatchesTheHandComputation()
    {
        var b1 = tensor(new float[] { 0.6f, 0.2f }).reshape(1, 2, 1, 1); var u1 = full(new long[] { 1, 1, 1 }, 0.2f);
        var b2 = tensor(new float[] { 0.5f, 0.3f }).reshape(1, 2, 1, 1); var u2 = full(new long[] { 1, 1, 1 }, 0.2f);
        var (b, u) = MutualEvidentialMethod.Combine(b1, u1, b2, u2);
        Assert.Equal(0.52f / 0.72f, b[0, 0, 0, 0].item<float>(), 5);
        Assert.Equal(0.16f / 0.72f, b[0, 1, 0, 0].item<float>(), 5);
        Assert.Equal(0.04f / 0.72f, u[0, 0, 0].item<float>(), 5);
        // a vacuous opinion (u = 1) leaves the other unchanged
        var (bv, uv) = MutualEvidentialMethod.Combine(zeros(1, 2, 1, 1), ones(1, 1, 1), b2, u2);
        Assert.True(bv.allclose(b2) && uv.allclose(u2));
    }

    [Fact]
    public void EvidenceIsExpOrSoftplusAndExpTracksTheSoftmax()
    {
        var z = tensor(new float[] { 3.3f, 0f, 0f, 0f }).view(1, 4, 1, 1);
        var exp = MutualEvidentialMethod.Alpha(z, exp: true);
        Assert.Equal(MathF.Exp(3.3f) + 1, exp[0, 0, 0, 0].item<float>(), 3);
        Assert.Equal(2f, exp[0, 1, 0, 0].item<float>(), 5);
        var p = exp / exp.sum(1, keepdim: true);
        Assert.InRange(p[0, 0, 0, 0].item<float>(), 0.8f, 0.9f); // near the softmax's 0.9 at this logit gap (α's +1 costs a little)
        var soft = MutualEvidentialMethod.Alpha(z);
        Assert.Equal(MathF.Log(1 + MathF.Exp(3.3f)) + 1, soft[0, 0, 0, 0].item<float>(), 3);
        var ps = soft / soft.sum(1, keepdim: true);
        Assert.True(ps[0, 0, 0, 0].item<float>() < 0.6f); // softplus evidence is far from confident at the same logits
        Assert.Equal(MathF.Exp(10f) + 1, MutualEvidentialMethod.Alpha(tensor(new float[] { 50f }).view(1, 1, 1, 1), exp: true).item<float>(), 0); // clamped
    }

    [Fact]
    public void DiscountIsRelativeSoAClassHardForBothNetworksIsNotSuppressed()
    {
        using var r = new ReliabilityMemory(2, 3);
        using (no_grad()) r.get_buffer("dice")!.copy_(tensor(new float[] { 0.9f, 0.05f, 0.6f, 0.45f, 0.05f, 0.3f }).view(2, 3));
        Assert.Equal(new[] { 1f, 1f, 1f }, r.Discount(0).data<float>().ToArray());
        var d1 = r.Discount(1).data<float>().ToArray();
        Assert.Equal(0.5f, d1[0], 5); Assert.Equal(1f, d1[1], 5); Assert.Equal(0.5f, d1[2], 5);
    }

    [Fact]
    public void ReliabilityFollowsTheLabeledDiceOfClassesPresent()
    {
        using var r = new ReliabilityMemory(2, 3);
        var labels = tensor(new long[] { 0, 0, 1, 1 }).reshape(1, 2, 2);
        var wrong = nn.functional.one_hot(tensor(new long[] { 1, 1, 0, 0 }).reshape(1, 2, 2), 3).permute(0, 3, 1, 2).to_type(ScalarType.Float32);
        r.Update(0, wrong, labels, 0.5);
        Assert.Equal(new[] { 0.525f, 0.525f, 1f }, r.Of(0).data<float>().ToArray()); // Dice 0 floored at 0.05; class 2 absent
        Assert.Equal(new[] { 1f, 1f, 1f }, r.Of(1).data<float>().ToArray());
    }

    [Fact]
    public void MedlStepTrainsBothNetworks()
    {
        torch.manual_seed(3);
        using var m = new MutualEvidentialMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["rampup"] = "0" }));
        var step = m.Step(rand(4, 1, 32, 32), Labels(2, 32), 2, new TrainingContext(50, 100, 0.01));
        Assert.True(float.IsFinite(step.Loss.item<float>()));
        Assert.True(step.Terms["unl"].item<float>() > 0);
        Assert.InRange(step.Terms["fused_u"].item<float>(), 0f, 1f);
        step.Loss.backward();
        Assert.True(m.NetA.parameters().First().grad!.abs().sum().item<float>() > 0);
        Assert.True(m.NetB.parameters().First().grad!.abs().sum().item<float>() > 0);
    }
}
