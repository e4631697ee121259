using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

public class AnatomicalContrastTests
{
    [Fact]
    public void IsdLossIsTheKlBetweenTheTwoSimilarityDistributions()
    {
        var queue = eye(3);
        var q = tensor(new float[] { 1, 0, 0 }).reshape(1, 3);
        // same embedding and same temperature: no divergence
        Assert.Equal(0f, AnatomicalContrastiveDistillationMethod.IsdLoss(q, q, queue, 0.1, 0.1).item<float>(), 6);
        // by hand: student logits [10, 0, 0] (T 0.1), teacher logits [0, 100, 0] (T 0.01)
        var k = tensor(new float[] { 0, 1, 0 }).reshape(1, 3);
        double zS = Math.Exp(10) + 2, zT = Math.Exp(100) + 2;
        double[] pS = { Math.Exp(10) / zS, 1 / zS, 1 / zS }, pT = { 1 / zT, Math.Exp(100) / zT, 1 / zT };
        double kl = Enumerable.Range(0, 3).Sum(i => pT[i] * Math.Log(pT[i] / pS[i]));
        Assert.Equal(kl, AnatomicalContrastiveDistillationMethod.IsdLoss(q, k, queue, 0.1, 0.01).item<float>(), 3);
    }

    [Fact]
    public void QueueWrapsAroundOldestFirst()
    {
        using var mem = new IsdMemory(3, 2, 2);
        mem.Enqueue(tensor(new float[] { 1, 0, 0, 1 }).reshape(2, 2), tensor(new float[] { 1, 1, 2, 2 }).reshape(2, 2));
        mem.Enqueue(tensor(new float[] { 5, 5, 6, 6 }).reshape(2, 2), tensor(new float[] { 7, 7, 8, 8 }).reshape(2, 2));
        // slots: 0 ← (1,0) then (6,6); 1 ← (0,1); 2 ← (5,5)
        Assert.Equal(new float[] { 6, 6, 0, 1, 5, 5 }, mem.Global.data<float>().ToArray());
        Assert.Equal(new float[] { 8, 8, 2, 2, 7, 7 }, mem.Local.data<float>().ToArray());
        Assert.Equal(1L, mem.get_buffer("pointer")!.item<long>());
    }

    [Fact]
    public void RegionalContrastHasTheClosedFormOnSeparatedFeatures()
    {
        // 2 classes, features e0 for class 0 and e1 for class 1, all hard (prob 0.5 < 0.97): every query has cosine 1
        // with its prototype and 0 with each of the N negatives: CE = −log(e^{1/τ} / (e^{1/τ} + N))
        var target = tensor(new long[] { 0, 0, 1, 1 }).reshape(1, 2, 2);
        var rep = stack(new[] { target.eq(0).to_type(ScalarType.Float32), target.eq(1).to_type(ScalarType.Float32) }, 1);
        var prob = full(new long[] { 1, 2, 2, 2 }, 0.5f);
        var valid = ones(1, 2, 2, dtype: ScalarType.Bool);
        double tau = 0.5; int n = 16;
        var loss = AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, target, valid, prob, 2, 0.97, tau, 8, n, new Random(1));
        double expected = -Math.Log(Math.Exp(1 / tau) / (Math.Exp(1 / tau) + n));
        Assert.Equal(expected, loss.item<float>(), 4);
        // one class only: nothing to contrast
        Assert.Equal(0f, AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, zeros_like(target), valid, prob, 2, 0.97, tau, 8, n, new Random(1)).item<float>());
        // confident pixels are not hard queries: with prob 1 nothing is queried
        Assert.Equal(0f, AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, target, valid, ones(1, 2, 2, 2), 2, 0.97, tau, 8, n, new Random(1)).item<float>());
    }

    [Fact]
    public void RegionalContrastComparesUnitVectorsOfAnyLengthAndAngle()
    {
        // class 0: three pixels v, 2v, 3v (prototype 2v); class 1: one pixel w, not orthogonal to v. Whatever is
        // sampled, every query and key is v/|v| or w/|w| once normalised, so with cosine c = cos(v, w) each class's
        // CE is −log(e^{1/τ} / (e^{1/τ} + N e^{c/τ})). Keys that were not normalised (3v against v) would change it.
        float[] v = { 1f, 0.5f }, w = { 0.2f, 1f };
        var feats = new[] { v, v.Select(x => 2 * x).ToArray(), v.Select(x => 3 * x).ToArray(), w };
        var rep = tensor(feats.SelectMany(f => f).ToArray(), new long[] { 1, 2, 2, 2 }).permute(0, 3, 1, 2); // (B, D, h, w)
        var target = tensor(new long[] { 0, 0, 0, 1 }).reshape(1, 2, 2);
        var prob = full(new long[] { 1, 2, 2, 2 }, 0.5f);
        var valid = ones(1, 2, 2, dtype: ScalarType.Bool);
        double tau = 0.5; int n = 16;
        double c = (v[0] * w[0] + v[1] * w[1]) / Math.Sqrt((v[0] * v[0] + v[1] * v[1]) * (w[0] * w[0] + w[1] * w[1]));
        double expected = -Math.Log(Math.Exp(1 / tau) / (Math.Exp(1 / tau) + n * Math.Exp(c / tau)));
        var loss = AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, target, valid, prob, 2, 0.97, tau, 8, n, new Random(3));
        Assert.Equal(expected, loss.item<float>(), 4);
    }

    [Fact]
    public void PretrainingDistilsThenStageTwoStartsFromThePretrainedStudentInBothNetworks()
    {
        torch.manual_seed(7);
        using var m = new AnatomicalContrastiveDistillationMethod(new UNetConfig(), Batches.Params(("pretrain_iterations", "2")));
        using var opt = optim.SGD(m.TrainableModules.SelectMany(x => x.parameters()), 0.01, momentum: 0.9);
        var x = rand(8, 1, 32, 32); var y = Batches.Labels(4, 32);
        var s0 = Trainer.Step(m, opt, x, y, 4, new TrainingContext(0, 10, 0.01));
        Assert.True(s0.Terms["isd_global"].item<float>() > 0 && s0.Terms["isd_local"].item<float>() > 0);
        Trainer.Step(m, opt, x, y, 4, new TrainingContext(1, 10, 0.01));
        // reference: model and ema_model both load the student's iter_30000.pth
        var studentAtSwitch = m.Student.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter.clone());
        var headsAtSwitch = m.Heads.parameters().First().clone();
        Assert.False(m.Teacher.parameters().First().allclose(studentAtSwitch.First().Value));
        var s2 = m.Step(x, y, 4, new TrainingContext(2, 10, 0.01));
        // (parameters: the teacher's train-mode forward in the step has already moved its BatchNorm statistics)
        foreach (var (k, v) in m.Teacher.named_parameters()) Assert.True(v.eq(studentAtSwitch[k]).all().item<bool>(), k);
        foreach (var (k, v) in m.Student.named_parameters()) Assert.True(v.eq(studentAtSwitch[k]).all().item<bool>(), k);
        Assert.True(m.TeacherHeads.parameters().First().eq(headsAtSwitch).all().item<bool>());
        Assert.True(s2.Terms.ContainsKey("contrast") && s2.Terms.ContainsKey("unsup"));
        // loss = sup + unsup + 0.01·contrast (train_2D_action.py --k1 0.01)
        Assert.Equal(0.01, m.ContrastWeight);
        float expected = s2.Terms["sup"].item<float>() + s2.Terms["unsup"].item<float>() + 0.01f * s2.Terms["contrast"].item<float>();
        Assert.Equal(expected, s2.Loss.item<float>(), 5);
        s2.Loss.backward();
        Assert.True(m.Student.parameters().First().grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void StageTwoCutMixBoxCoversHalfTheImageAsTheReferences()
    {
        var rng = new Random(4);
        for (int k = 0; k < 50; k++)
        {
            var m = AnatomicalContrastiveDistillationMethod.HalfImageBox(32, 48, rng);
            int area = (int)m.Sum();
            var rows = Enumerable.Range(0, 32).Where(y => Enumerable.Range(0, 48).Any(x => m[y * 48 + x] == 1)).ToArray();
            var cols = Enumerable.Range(0, 48).Where(x => Enumerable.Range(0, 32).Any(y => m[y * 48 + x] == 1)).ToArray();
            Assert.Equal(rows.Length * cols.Length, area);           // one box
            Assert.InRange(cols.Length, 25, 47);                      // w ~ U{W/2+1, …, W−1}
            Assert.InRange(Math.Abs(area - 32 * 48 / 2), 0, cols.Length / 2); // h = round(HW/2 / w)
        }
    }

    [Fact]
    public void UnsupervisedLossWeighsImagesByConfidentShareAndAveragesOverPositiveLossPixels()
    {
        // image 0: pixel 0 certain (CE exactly 0 in float32), pixels 1-3 at logits (1, 0) → CE ln(1+e^-1); 3 of 4 confident
        // image 1: all 4 pixels CE ln 2; 1 of 4 confident
        var logits = tensor(new float[] { 200, 1, 1, 1, 0, 0, 0, 0, /* image 1 */ 0, 0, 0, 0, 0, 0, 0, 0 }, new long[] { 2, 2, 2, 2 });
        var pseudo = zeros(new long[] { 2, 2, 2 }, dtype: ScalarType.Int64);
        var conf = tensor(new float[] { 0.99f, 0.99f, 0.99f, 0.5f, 0.99f, 0.5f, 0.5f, 0.5f }, new long[] { 2, 2, 2 });
        double a = Math.Log(1 + Math.Exp(-1)), b = Math.Log(2);
        double expected = (0.75 * 3 * a + 0.25 * 4 * b) / 7; // 7 pixels with CE > 0
        Assert.Equal(expected, AnatomicalContrastiveDistillationMethod.UnsupervisedLoss(logits, pseudo, conf, 0.97).item<float>(), 5);
    }

    [Fact]
    public void StageTwoFromEmaSwitchRestoresTheOldHandOver()
    {
        torch.manual_seed(8);
        var settings = Batches.Params(("pretrain_iterations", "2"), ("stage2_from_ema", "true"), ("contrast_weight", "1"));
        using var m = new AnatomicalContrastiveDistillationMethod(new UNetConfig(), settings);
        settings.EnsureAllUsed("action");
        using var opt = optim.SGD(m.TrainableModules.SelectMany(x => x.parameters()), 0.01, momentum: 0.9);
        // (the EMA's warm-up makes the teacher equal to the student after the first step; the second separates them)
        for (int t = 0; t < 2; t++) Trainer.Step(m, opt, rand(8, 1, 32, 32), Batches.Labels(4, 32), 4, new TrainingContext(t, 10, 0.01));
        var teacher = m.Teacher.parameters().First().clone();
        Assert.False(teacher.eq(m.Student.parameters().First()).all().item<bool>());
        m.SwitchToStageTwo();
        Assert.True(teacher.eq(m.Student.parameters().First()).all().item<bool>());
        Assert.True(teacher.eq(m.Teacher.parameters().First()).all().item<bool>());
        Assert.Equal(1.0, m.ContrastWeight);
    }

    [Fact]
    public void NegativesFollowTheClassProbabilitiesAndAreUniformWithinEachClass()
    {
        // pools of 5, 7 and 11 pixels (values 100k + i tell class k apart), class probabilities 0.2, 0, 0.8 (a class the
        // softmax gives nothing must never be drawn). With n draws a class's share has standard deviation
        // sqrt(p(1-p)/n) ≈ 0.0009 and a pixel's count sqrt(np/size) ≈ 180 or fewer: the bounds are 5 of those, so a
        // correct sampler fails them for fewer than 1 key in a million, and this key is fixed.
        int[] sizes = { 5, 7, 11 };
        var pool = sizes.SelectMany((n, k) => Enumerable.Range(0, n).Select(i => 100_000L * k + i)).ToArray();
        int[] offsets = { 0, 5, 12 };
        float[] p = { 0.2f, 0f, 0.8f };
        const int n = 200_000;
        var draws = new long[n];
        AnatomicalContrastiveDistillationMethod.DrawNegatives(draws, pool, offsets, sizes, p, 0x5EED);
        for (int k = 0; k < 3; k++)
        {
            var ofClass = draws.Where(v => v / 100_000 == k).ToArray();
            double share = ofClass.Length / (double)n;
            Assert.True(Math.Abs(share - p[k]) <= 5 * Math.Sqrt(p[k] * (1 - p[k]) / n), $"class {k}: share {share}, expected {p[k]}");
            double expected = n * p[k] / sizes[k];
            for (int i = 0; i < sizes[k]; i++)
            {
                int count = ofClass.Count(v => v % 100_000 == i);
                Assert.True(Math.Abs(count - expected) <= 5 * Math.Sqrt(expected), $"class {k} pixel {i}: {count} draws, expected {expected}");
            }
        }
        Assert.All(draws, v => Assert.Contains(v, pool));
        // the key decides the draws
        var again = new long[n];
        AnatomicalContrastiveDistillationMethod.DrawNegatives(again, pool, offsets, sizes, p, 0x5EED);
        Assert.Equal(draws, again);
        AnatomicalContrastiveDistillationMethod.DrawNegatives(again, pool, offsets, sizes, p, 0x5EEE);
        Assert.NotEqual(draws, again);
    }

    [Fact]
    public void FusedContrastGivesTheTensorFormsLossAndGradient()
    {
        // the table's shapes on a random representation: 4 classes, every pixel hard, 256 queries x 512 negatives of
        // 32-d keys. Both forms draw the same samples (same generator), so they differ only by float summation order:
        // a logit is a 32-term float dot product of unit vectors (error ~1e-6 after /τ), the loss a mean of log-sum-exps
        // over 513 terms and each gradient row a softmax-weighted sum of 513 unit rows; 1e-4 of the values' scale is
        // two orders above that and far below what a wrong weight, sign or row would give.
        var g = new Generator(11);
        var rep0 = randn(new long[] { 2, 32, 24, 24 }, generator: g);
        var target = randint(0, 4, new long[] { 2, 24, 24 }, generator: g);
        var valid = ones(new long[] { 2, 24, 24 }, dtype: ScalarType.Bool);
        var prob = nn.functional.softmax(randn(new long[] { 2, 4, 24, 24 }, generator: g), 1);
        (float loss, Tensor grad) Run(bool fused)
        {
            var rep = rep0.detach().clone().requires_grad_(true);
            var l = AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, target, valid, prob, 4, 0.97, 0.5, 256, 512, new Random(5), fused);
            l.backward();
            return (l.item<float>(), rep.grad!.clone());
        }
        var (lf, gf) = Run(true);
        var (lt, gt) = Run(false);
        Assert.True(lt > 1, $"loss {lt}");   // ~log 513 for random keys: a real contrast, not a degenerate zero
        Assert.Equal(lt, lf, 1e-4 * lt);
        double scale = gt.abs().max().item<float>();
        Assert.True(scale > 0);
        Assert.True((gf - gt).abs().max().item<float>() <= 1e-4 * scale, $"gradients differ by {(gf - gt).abs().max().item<float>()} at scale {scale}");
    }
}
