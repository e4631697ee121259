using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

public class MutualMaskMixTests
{
    [Fact]
    public void GridMaskZeroesExactlyHalfTheBlocksEachWhole()
    {
        var m = Perturbations.GridBlockMask(32, 32, new Random(4), grid: 4, ratio: 0.5);
        int zeroBlocks = 0;
        for (int gy = 0; gy < 4; gy++)
            for (int gx = 0; gx < 4; gx++)
            {
                var block = Enumerable.Range(0, 64).Select(k => m[(gy * 8 + k / 8) * 32 + gx * 8 + k % 8]).Distinct().ToArray();
                Assert.Single(block); // a block is all 0 or all 1
                if (block[0] == 0) zeroBlocks++;
            }
        Assert.Equal(8, zeroBlocks);
        Assert.NotEqual(m, Perturbations.GridBlockMask(32, 32, new Random(5), grid: 4, ratio: 0.5));
    }

    [Fact]
    public void FeaturesComeFromTheSamePassAsTheLogits()
    {
        torch.manual_seed(1);
        using var net = new UNet2D(new UNetConfig());
        net.eval();
        var x = randn(2, 1, 32, 32);
        var (logits, high, low) = net.ForwardWithFeatures(x);
        Assert.Equal(new long[] { 2, 256, 2, 2 }, high.shape);
        Assert.Equal(new long[] { 2, 16, 32, 32 }, low.shape);
        Assert.True(logits.allclose(net.forward(x), atol: 1e-5));
    }

    [Fact]
    public void HighLowConsistencyHasTheExactValues()
    {
        // student low = 1, teacher low = 0 / 2: L1 = 1 for every pair; high: identical (cos 1) and opposite (cos −1)
        var sHigh = ones(1, 2, 1, 1); var tSame = ones(1, 2, 1, 1); var tOpp = -ones(1, 2, 1, 1);
        var (low, high) = MutualMaskMixMethod.HighLowConsistency(
            new[] { (sHigh, ones(1, 3, 2, 2)) },
            new[] { (tSame, zeros(1, 3, 2, 2)), (tOpp, full(new long[] { 1, 3, 2, 2 }, 2f)) });
        Assert.Equal(1f, low.item<float>(), 6);
        Assert.Equal(1f, high.item<float>(), 5); // mean of (1 − 1) and (1 − (−1))
    }

    [Fact]
    public void SelfTrainingStepTrainsTheStudentAndTheTeacherFollowsByEma()
    {
        torch.manual_seed(3);
        using var m = new MutualMaskMixMethod(new UNetConfig(), new MethodSettings());
        using var opt = optim.SGD(m.Student.parameters(), 0.01, momentum: 0.9);
        var x = rand(8, 1, 32, 32); var y = Batches.Labels(4, 32);
        var before = m.Student.parameters().First().clone();
        var teacherBefore = m.Teacher.parameters().First().clone();
        var step = Trainer.Step(m, opt, x, y, 4, new TrainingContext(0, 10, 0.01));
        Assert.True(step.Terms["low"].item<float>() > 0 && step.Terms["high"].item<float>() >= 0);
        var after = m.Student.parameters().First();
        Assert.False(before.allclose(after));
        // state-dict EMA with a constant α = 0.99 from the teacher's own initial weights
        Assert.True((0.99 * teacherBefore + 0.01 * after).allclose(m.Teacher.parameters().First(), atol: 1e-6));
        Assert.Throws<ArgumentException>(() => new MutualMaskMixMethod(new UNetConfig(), new MethodSettings()).Step(x, y.narrow(0, 0, 1), 1, new TrainingContext(0, 10, 0.01)));
    }
}

public class MutualMaskMixRoleTests
{
    [Fact]
    public void TeacherIsItsOwnNetworkAsTheReferenceBuildsIt()
    {
        // ACDC_M3HL_train.py: ema_model = create_model(ema=True), a second, separately initialised network
        torch.manual_seed(11);
        using var m = new MutualMaskMixMethod(new UNetConfig(), new MethodSettings());
        var s = m.Student.parameters().ToArray(); var t = m.Teacher.parameters().ToArray();
        Assert.Equal(s.Length, t.Length);
        Assert.Contains(Enumerable.Range(0, s.Length), i => s[i].numel() > 1 && !s[i].allclose(t[i]));
        Assert.All(t, p => Assert.False(p.requires_grad));
        using var copy = new MutualMaskMixMethod(new UNetConfig(), Batches.Params(("teacher_init", "copy")));
        Assert.All(copy.Student.parameters().Zip(copy.Teacher.parameters()), p => Assert.True(p.First.eq(p.Second).all().item<bool>()));
        Assert.Throws<ArgumentException>(() => new MutualMaskMixMethod(new UNetConfig(), Batches.Params(("teacher_init", "student"))));
    }

    [Fact]
    public void MixesPutTheUnlabeledImageInsideTheMaskOfOneAndOutsideTheMaskOfTheOther()
    {
        // x_u = u_a·M + l_a·(1−M), x_l = l_b·M + u_b·(1−M) (ACDC_M3HL_train.py:313-314)
        var mask = tensor(Perturbations.GridBlockMask(8, 8, new Random(2), 4, 0.5), new long[] { 1, 8, 8 });
        var inside = mask.unsqueeze(1).to_type(ScalarType.Bool);
        Tensor Const(float v) => full(new long[] { 1, 1, 8, 8 }, v);
        var (xu, xl) = MutualMaskMixMethod.Mix(Const(1), Const(2), Const(3), Const(4), mask);   // l_a, l_b, u_a, u_b
        Assert.True(xu.eq(where(inside, Const(3), Const(1))).all().item<bool>());
        Assert.True(xl.eq(where(inside, Const(2), Const(4))).all().item<bool>());
    }

    [Fact]
    public void PseudoLabelRegionsWeighUWeightAndGroundTruthRegionsOne()
    {
        // the mutual roles of the regions (ACDC_M3HL_train.py:319-320): logits that are right everywhere give ~0; one
        // wrong region at a time costs its weight: u_weight for u_a's pseudo-labels inside M on x_u and for u_b's
        // outside M on x_l, 1 for l_a's ground truth outside M on x_u and for l_b's inside M on x_l
        const int C = 4, H = 8;
        var mask = tensor(Perturbations.GridBlockMask(H, H, new Random(3), 4, 0.5), new long[] { 1, H, H });
        var inside = mask.to_type(ScalarType.Bool);
        var yA = full(new long[] { 1, H, H }, 1L); var plA = full(new long[] { 1, H, H }, 2L);
        var yB = full(new long[] { 1, H, H }, 3L); var plB = full(new long[] { 1, H, H }, 0L);
        Tensor Confident(Tensor target) => nn.functional.one_hot(target, C).permute(0, 3, 1, 2).to_type(ScalarType.Float32) * 30;
        var rightU = Confident(where(inside, plA, yA)); var rightL = Confident(where(inside, yB, plB));
        var (d0, c0) = MutualMaskMixMethod.MixedLoss(rightU, rightL, yA, yB, plA, plB, mask, 0.5);
        Assert.True(c0.item<float>() < 1e-6, $"CE {c0.item<float>()} with every region right");
        Assert.True(d0.item<float>() < 1e-3, $"Dice {d0.item<float>()} with every region right");
        // a uniform (uninformative) prediction in one region: masked CE there is ln C, times the region's weight
        var flat = zeros(1, C, H, H);
        double Ce(Tensor lu, Tensor ll) => MutualMaskMixMethod.MixedLoss(lu, ll, yA, yB, plA, plB, mask, 0.5).ce.item<float>();
        var m4 = inside.unsqueeze(1);
        Assert.Equal(0.5 * Math.Log(C), Ce(where(m4, flat, rightU), rightL), 4);            // x_u inside M: u_a pseudo-labels
        Assert.Equal(1.0 * Math.Log(C), Ce(where(m4, rightU, flat), rightL), 4);            // x_u outside M: l_a ground truth
        Assert.Equal(1.0 * Math.Log(C), Ce(rightU, where(m4, flat, rightL)), 4);            // x_l inside M: l_b ground truth
        Assert.Equal(0.5 * Math.Log(C), Ce(rightU, where(m4, rightL, flat)), 4);            // x_l outside M: u_b pseudo-labels
    }
}
