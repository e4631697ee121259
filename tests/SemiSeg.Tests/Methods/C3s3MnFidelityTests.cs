using System.Text.Json;
using SemiSeg.Inference;
using SemiSeg.Methods;
using SemiSeg.Methods.Volume;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

/// <summary>
/// C3S3 and M&amp;N against our own Python transcription of their reference code (Fixtures/fidelity/
/// reference_c3s3_mn.py, run once with Debian's python3-torch 1.13, expected values in float64), and the behaviour
/// that defines them: only C3S3's weaker network is taught by the competition, C3S3 predicts with both networks
/// averaged, M&amp;N's cross-targets are the other network's detached eval-mode predictions, and M&amp;N's schedule
/// restarts at its stage switch.
/// </summary>
public class C3s3MnFidelityTests
{
    static JsonElement Load(string name) => FidelityFixture.Load(name);

    static Tensor Floats(JsonElement root, string key, ScalarType dtype)
    {
        var e = root.GetProperty(key);
        var shape = e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
        return tensor(e.GetProperty("data").EnumerateArray().Select(v => v.GetDouble()).ToArray(), shape).to_type(dtype);
    }

    static Tensor Longs(JsonElement root, string key)
    {
        var e = root.GetProperty(key);
        return tensor(e.GetProperty("data").EnumerateArray().Select(v => v.GetInt64()).ToArray(), e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray());
    }

    // float64: the formulas agree to rounding (1e-12 here), so 1e-5 absolute is the brief's tolerance with room to spare.
    // float32, as training runs: unit roundoff 6e-8 over sums of ~10^2 terms of a loss of ~10^2 stays below 1e-5 relative.
    [Theory]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.Float32)]
    public void C3s3StepLossesMatchTheReferenceIteration(ScalarType dtype)
    {
        var f = Load("c3s3.json");
        int nl = f.GetProperty("labeled_bs").GetInt32();
        double alpha = f.GetProperty("alpha").GetDouble();
        double lambda = Ramps.Ssl4misConsistency(0.1, f.GetProperty("iteration").GetInt64(), 40);
        var labels = Longs(f, "label");
        var t = new[] { "v1", "v2", "r1", "r2", "vp1", "vp2", "rp1", "rp2" }.ToDictionary(k => k, k => Floats(f, k, dtype));
        foreach (var c in f.GetProperty("cases").EnumerateArray())
        {
            Assert.Equal(c.GetProperty("weight").GetDouble(), lambda, 12);
            bool swap = c.GetProperty("swap").GetBoolean();
            string a = swap ? "r" : "v", b = swap ? "v" : "r";
            var o = new ComplementaryCompetitionMethod.Outputs(t[a + "1"], t[a + "2"], t[b + "1"], t[b + "2"], t[a + "p1"], t[a + "p2"], t[b + "p1"], t[b + "p2"]);
            var terms = ComplementaryCompetitionMethod.ReferenceLosses(o, labels, nl, alpha, lambda, 1.0, 1.0, 0.1, 0.1, cosineDim: -1);
            Assert.Equal(c.GetProperty("a_teaches").GetInt32(), (int)terms["a_teaches"].item<float>());
            foreach (var k in new[] { "sel_a", "sel_b", "sup_a", "sup_b", "cos_a", "cos_b", "dcc", "odcl", "loss_a", "loss_b", "loss" })
            {
                double expected = c.GetProperty(k).GetDouble(), actual = terms[k].to_type(ScalarType.Float64).item<double>();
                double tol = dtype == ScalarType.Float64 ? 1e-5 : 1e-5 * Math.Max(1, Math.Abs(expected));
                Assert.True(Math.Abs(expected - actual) <= tol, $"{k} ({dtype}, swap {swap}): expected {expected}, got {actual}");
            }
        }
    }

    [Fact]
    public void MnLossIsTheReferencesDiceLossPlusKlDivLossMean()
    {
        var f = Load("mn.json");
        var pred = Floats(f, "pred", ScalarType.Float64); var target = Floats(f, "target", ScalarType.Float64);
        Assert.Equal(f.GetProperty("dice").GetDouble(), TwoDimToThreeDimCoTrainingMethod.Loss(pred, target, 0.0).item<double>(), 1e-5);
        Assert.Equal(f.GetProperty("loss").GetDouble(), TwoDimToThreeDimCoTrainingMethod.Loss(pred, target, 1.0).item<double>(), 1e-5);
        // the KL alone, and in float32 as training runs it (values ~1, float32 rounding ~1e-7)
        Assert.Equal(f.GetProperty("kl").GetDouble(), (TwoDimToThreeDimCoTrainingMethod.Loss(pred, target, 1.0) - TwoDimToThreeDimCoTrainingMethod.Loss(pred, target, 0.0)).item<double>(), 1e-5);
        Assert.Equal(f.GetProperty("loss").GetDouble(), TwoDimToThreeDimCoTrainingMethod.Loss(pred.to_type(ScalarType.Float32), target.to_type(ScalarType.Float32), 1.0).item<float>(), 1e-5);
    }

    static ComplementaryCompetitionMethod.Outputs Forward(ComplementaryCompetitionMethod m, Tensor x, bool swap)
    {
        var (la, _, fa) = m.NetA.ForwardWithFeatures(x);
        var (lb, _, fb) = m.NetB.ForwardWithFeatures(x);
        var (la2, _, fa2) = m.NetA.ForwardWithFeatures(x);
        var (lb2, _, fb2) = m.NetB.ForwardWithFeatures(x);
        var (pa, pa2, pb, pb2) = (m.ProjA.forward(fa), m.ProjA.forward(fa2), m.ProjB.forward(fb), m.ProjB.forward(fb2));
        return swap ? new(lb, lb2, la, la2, pb, pb2, pa, pa2) : new(la, la2, lb, lb2, pa, pa2, pb, pb2);
    }

    [Fact]
    public void C3s3TeachesOnlyTheWeakerNetworkByCompetition()
    {
        manual_seed(21);
        using var m = new ComplementaryCompetitionMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings(new Dictionary<string, string>()));
        var x = rand(4, 1, 32, 32); var y = (x.narrow(0, 0, 2)[.., 0] > 0.5).to_type(ScalarType.Int64);
        foreach (bool swap in new[] { false, true })
        {
            foreach (var p in m.TrainableModules.SelectMany(mm => mm.parameters())) p.grad = null;
            var o = Forward(m, x, swap);
            double lambda = 0.07;
            var t = ComplementaryCompetitionMethod.ReferenceLosses(o, y, 2, 0.5, lambda, 1, 1, 0.1, 0.1, cosineDim: -1);
            bool firstTeaches = t["a_teaches"].item<float>() == 1f;
            Assert.Equal(t["sel_a"].item<float>() < t["sel_b"].item<float>(), firstTeaches);
            // the competition term sits in the pupil's loss only
            float restA = (t["loss_a"] - t["sup_a"] - t["cos_a"] - t["odcl"]).item<float>(), restB = (t["loss_b"] - t["sup_b"] - t["cos_b"] - t["odcl"]).item<float>();
            float dcc = (float)lambda * t["dcc"].item<float>();
            Assert.True(dcc > 1e-6);
            Assert.Equal(firstTeaches ? 0f : dcc, restA, 5);
            Assert.Equal(firstTeaches ? dcc : 0f, restB, 5);
            // and its gradient reaches the pupil's network only (the teacher's sharpened target is detached)
            t["dcc"].backward();
            bool unetTeaches = firstTeaches != swap;
            nn.Module teacher = unetTeaches ? m.NetA : m.NetB, pupil = unetTeaches ? m.NetB : m.NetA;
            Assert.All(teacher.parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));
            Assert.True(pupil.parameters().Sum(p => p.grad is null ? 0 : p.grad.abs().sum().item<float>()) > 0);
        }
    }

    [Fact]
    public void C3s3PredictsWithBothNetworksAveragedAndItsCheckpointKeepsTheEnsemble()
    {
        manual_seed(22);
        using var t = new TempDir();
        using var m = new ComplementaryCompetitionMethod(new UNetConfig { NumClasses = 3 }, new MethodSettings(new Dictionary<string, string>()));
        var module = Assert.IsType<SoftmaxEnsemble>(((ITrainableMethod)m).InferenceModule);
        ((ITrainableMethod)m).Train(false);
        using var noGrad = no_grad();
        var x = rand(2, 1, 32, 32);
        var expected = (nn.functional.softmax(m.NetA.forward(x), 1) + nn.functional.softmax(m.NetB.forward(x), 1)) / 2;
        Assert.True(nn.functional.softmax(module.forward(x), 1).allclose(expected, rtol: 1e-5, atol: 1e-6));
        var path = Path.Combine(t.Path, "best.ckpt");
        Checkpoint.Save(path, new CheckpointMeta { Method = "c3s3", Network = m.NetA.Config, PatchHeight = 32, PatchWidth = 32 }, m, null);
        var (net, meta) = CheckpointFile.LoadAnyNetwork(path);
        using (net)
        {
            Assert.Equal(new[] { "unet", "resunet" }, meta.Ensemble);
            net.eval();
            Assert.True(nn.functional.softmax(net.forward(x), 1).allclose(expected, rtol: 1e-5, atol: 1e-6));
        }
        Assert.Contains("ensemble", Assert.Throws<InvalidDataException>(() => CheckpointFile.LoadNetwork(path)).Message);
        // evaluate and predict load the checkpoint's inferer: slice-wise over the ensemble, the averaged softmax's argmax
        var (inferer, _) = CheckpointFile.LoadInferer(path);
        using (inferer)
        {
            Assert.Contains("ensemble (unet + resunet)", inferer.Describe());
            var image = rand(2, 32, 32);
            var vol = new SemiSeg.Data.Volume("v", 2, 32, 32, image.data<float>().ToArray(), null);
            var labels = (nn.functional.softmax(m.NetA.forward(image.unsqueeze(1)), 1) + nn.functional.softmax(m.NetB.forward(image.unsqueeze(1)), 1)).argmax(1).to_type(ScalarType.Byte);
            Assert.Equal(labels.data<byte>().ToArray(), inferer.Predict(vol));
        }
        // network A is whichever 2D network --network names; the checkpoint names it so it is rebuilt as that kind
        using (var r18 = new ComplementaryCompetitionMethod(new UNetConfig { NumClasses = 3, Kind = Net2DKind.Resnet18Unet }, new MethodSettings(new Dictionary<string, string>())))
            Assert.Equal(new[] { "resnet18-unet", "resunet" }, ((SoftmaxEnsemble)((ITrainableMethod)r18).InferenceModule).Kinds);
        using var single = new ComplementaryCompetitionMethod(new UNetConfig { NumClasses = 3 }, MethodSettings.Parse(new[] { "inference=first" }));
        Assert.Same(single.NetA, ((ITrainableMethod)single).InferenceModule);
    }

    [Fact]
    public void MnCrossTargetsAreTheOtherNetworksDetachedEvalModePredictions()
    {
        manual_seed(23);
        // dropout on in both networks (the 2D UNet's SSL4MIS rates, the VNet's 0.5), so train and eval mode differ
        using var m = new TwoDimToThreeDimCoTrainingMethod(new VolumeMethodContext(new Net3DConfig { Dropout = true }, new UNetConfig { NumClasses = 2 }, MethodSettings.Parse(Array.Empty<string>())));
        m.Net3D.train(); m.Net2D.train();
        var x = randn(new long[] { 3, 1, 16, 16, 16 }); var y = (x.narrow(0, 0, 2)[.., 0] > 0.5).to_type(ScalarType.Int64);
        Dictionary<string, Tensor> Snapshot() => m.Net3D.state_dict().Concat(m.Net2D.state_dict().Select(kv => new KeyValuePair<string, Tensor>("2d." + kv.Key, kv.Value)))
            .ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        void Restore(Dictionary<string, Tensor> s)
        {
            using var ng = no_grad();
            foreach (var (k, v) in m.Net3D.state_dict()) v.copy_(s[k]);
            foreach (var (k, v) in m.Net2D.state_dict()) v.copy_(s["2d." + k]);
        }
        var saved = Snapshot();
        manual_seed(5);
        var step = m.Step(x, y, 2, new TrainingContext(900, 1000, 0.01));
        Restore(saved); // the step's train-mode forward moved the BatchNorm running statistics
        manual_seed(5);
        var (for3D, for2D) = m.CrossTargets(x.narrow(0, 2, 1));
        Assert.True(m.Net3D.training && m.Net2D.training, "modes restored");
        Assert.False(for3D.requires_grad || for2D.requires_grad);
        // the labeller's eval-mode output: the 2D network slice by slice for the 3D network, and the other way round
        // (eval mode draws no dropout, so the random stream below is still the step's)
        m.Net3D.eval(); m.Net2D.eval();
        using (no_grad())
        {
            Assert.True(for3D.allclose(nn.functional.softmax(TwoDimToThreeDimCoTrainingMethod.SliceWise(m.Net2D, x.narrow(0, 2, 1)), 1), rtol: 1e-5, atol: 1e-6));
            Assert.True(for2D.allclose(nn.functional.softmax(m.Net3D.forward(x.narrow(0, 2, 1)), 1), rtol: 1e-5, atol: 1e-6));
        }
        m.Net3D.train(); m.Net2D.train();
        var o3 = m.Net3D.forward(x); var o2 = TwoDimToThreeDimCoTrainingMethod.SliceWise(m.Net2D, x);
        var onehot = nn.functional.one_hot(y, 2).permute(0, 4, 1, 2, 3).to_type(ScalarType.Float32);
        var expected = m.Loss(o3, cat(new[] { onehot, for3D }, 0)) + m.Loss(o2, cat(new[] { onehot, for2D }, 0));
        Assert.Equal(expected.item<float>(), step.Loss.item<float>(), 5);
        // the former train-mode targets give a different loss: the test can tell them apart
        Tensor t3, t2;
        using (no_grad()) { t3 = nn.functional.softmax(o2.narrow(0, 2, 1), 1); t2 = nn.functional.softmax(o3.narrow(0, 2, 1), 1); }
        var former = m.Loss(o3, cat(new[] { onehot, t3 }, 0)) + m.Loss(o2, cat(new[] { onehot, t2 }, 0));
        Assert.True(Math.Abs(former.item<float>() - step.Loss.item<float>()) > 1e-4);
    }

    [Fact]
    public void MnRestartsTheScheduleAtTheStageSwitch()
    {
        var o = new TrainOptions { Schedule = LrSchedule.Cosine, BaseLr = 0.01, MaxIterations = 800 };
        using var m = new TwoDimToThreeDimCoTrainingMethod(new VolumeMethodContext(new Net3DConfig { Dropout = false }, new UNetConfig { NumClasses = 2 }, MethodSettings.Parse(Array.Empty<string>())));
        long r = m.ScheduleRestart(800);
        Assert.Equal(100, r); // warmup_fraction 1/8: the reference's 500 of 4000
        Assert.Equal(0.01 * 0.5 * (1 + Math.Cos(Math.PI * 99 / 100)), o.LearningRateAt(99, r), 12); // annealed to ~0 at the switch
        Assert.Equal(0.01, o.LearningRateAt(100, r), 12);                                            // and restarted there
        Assert.Equal(0.005, o.LearningRateAt(450, r), 12);                                           // half-way through stage 2
        Assert.Equal(o.LearningRateAt(450), o.LearningRateAt(450, 0), 12);
        using var plain = new TwoDimToThreeDimCoTrainingMethod(new VolumeMethodContext(new Net3DConfig { Dropout = false }, new UNetConfig { NumClasses = 2 }, MethodSettings.Parse(new[] { "lr_restart=false" })));
        Assert.Equal(0, plain.ScheduleRestart(800));
    }
}
