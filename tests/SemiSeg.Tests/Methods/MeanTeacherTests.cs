using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

public class MeanTeacherTests
{
    [Fact]
    public void RampsMatchSsl4mis()
    {
        Assert.Equal(Math.Exp(-5.0), Ramps.Sigmoid(0, 200), 12);
        Assert.Equal(1.0, Ramps.Sigmoid(200, 200), 12);
        Assert.Equal(Math.Exp(-5.0 * 0.25), Ramps.Sigmoid(100, 200), 12);
        // iteration // 150 with length 200: full weight exactly at 30 000
        Assert.Equal(0.1 * Math.Exp(-5.0 * Math.Pow(1 - 199.0 / 200, 2)), Ramps.Ssl4misConsistency(0.1, 29999, 200), 12);
        Assert.Equal(0.1, Ramps.Ssl4misConsistency(0.1, 30000, 200), 12);
        Assert.Equal(0.25, Ramps.Linear(1, 4), 12);
        Assert.Equal(0.5, Ramps.CosineDown(2, 4), 12);
    }

    [Fact]
    public void EmaUpdatesInPlaceWithWarmup()
    {
        using var s = new UNet2D(new UNetConfig());
        using var t = new UNet2D(new UNetConfig());
        var tp = t.parameters().First(); var sp = s.parameters().First();
        using (no_grad()) { tp.fill_(1.0); sp.fill_(3.0); }
        Assert.Equal(0.5, Ema.WarmupAlpha(0.99, 1));
        Assert.Equal(0.99, Ema.WarmupAlpha(0.99, 1000));
        Ema.Update(t, s, Ema.WarmupAlpha(0.99, 1)); // alpha = min(1 - 1/2, 0.99) = 0.5
        Assert.Equal(2.0f, tp.view(-1)[0].item<float>(), 5);
        Ema.Update(t, s, 0.99);
        Assert.Equal(0.99f * 2 + 0.01f * 3, tp.view(-1)[0].item<float>(), 5);
        // buffers only with includeBuffers
        var tb = t.buffers().First(b => b.is_floating_point()); var sb = s.buffers().First(b => b.is_floating_point());
        using (no_grad()) { tb.fill_(0.0); sb.fill_(1.0); }
        Ema.Update(t, s, 0.99);
        Assert.Equal(0f, tb.view(-1)[0].item<float>());
        Ema.Update(t, s, 0.99, includeBuffers: true);
        Assert.Equal(0.01f, tb.view(-1)[0].item<float>(), 5);
    }

    [Fact]
    public void ConsistencyStartsAfterTheConfiguredIterationAndUnknownParametersAreRefused()
    {
        using var mt = new MeanTeacherMethod(new UNetConfig(), new MethodSettings());
        Assert.Equal(0.0, mt.ConsistencyWeight(999));
        Assert.True(mt.ConsistencyWeight(1000) > 0);
        var bad = new MethodSettings(new Dictionary<string, string> { ["consistancy"] = "1" });
        using var m2 = new MeanTeacherMethod(new UNetConfig(), bad);
        var e = Assert.Throws<ArgumentException>(() => bad.EnsureAllUsed("mean-teacher"));
        Assert.Contains("consistancy", e.Message);
    }

    [Fact]
    public void StepTrainsTheStudentAndTheTeacherFollows()
    {
        torch.manual_seed(3);
        using var mt = new MeanTeacherMethod(new UNetConfig(), SemiSeg.Training.Benchmark.PeerMeanTeacherSettings());
        using var opt = optim.SGD(mt.Student.parameters(), 0.01, momentum: 0.9);
        var x = randn(4, 1, 32, 32);
        var y = randint(0, 4, new long[] { 2, 32, 32 }).to_type(ScalarType.Int64);
        var teacherBefore = mt.Teacher.parameters().First().clone();
        var step = SemiSeg.Training.Trainer.Step(mt, opt, x, y, 2, new TrainingContext(200, 1000, 0.01));
        Assert.True(step.Terms.ContainsKey("cons"));
        Assert.True(step.Terms["cons"].item<float>() >= 0);
        Assert.False(teacherBefore.eq(mt.Teacher.parameters().First()).all().item<bool>());
        Assert.All(mt.Teacher.parameters(), p => Assert.Null(p.grad));
    }
}
