using SemiSeg.Methods;
using SemiSeg.Methods.Volume;
using SemiSeg.Training;

namespace SemiSeg.Tests.Training;

/// <summary>The reference protocols in configs/ load through the loader the CLI's --config uses, validate, name a
/// method that exists and only parameters that method reads; and the run-level defaults that follow a reference.</summary>
public class ReferenceConfigTests
{
    static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SemiSeg.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("SemiSeg.sln not found above the test binaries");
    }

    [Fact]
    public void EveryConfigFileLoadsValidatesAndUsesOnlyParametersItsMethodReads()
    {
        var files = Directory.GetFiles(Path.Combine(RepoRoot(), "configs"), "*.yaml", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        foreach (var f in files)
        {
            var o = TrainOptions.FromFile(f);
            o.Validate();
            var settings = new MethodSettings(o.MethodParams);
            if (o.Network3D is { } n3)
            {
                // a 3D protocol (configs/la): its method's volume version, with the file's 3D network
                var entry = MethodRegistry.GetVolume(o.Method);
                using (var m = entry.Create(new VolumeMethodContext(n3, o.Network with { NumClasses = 2 }, settings))) settings.EnsureAllUsed(entry.Name);
                Assert.True(o.PatchDepth > 0 && o.MaxIterations >= 2500, f);
            }
            else
            {
                var entry = MethodRegistry.Get(o.Method);
                using (var m = entry.Create(o.Network, settings)) settings.EnsureAllUsed(entry.Name);
                // the references' full schedules, not the CPU table's (the meta-label pre-training: 80 epochs x 200 batches)
                Assert.True(o.MaxIterations >= (entry.Name == "meta-contrast" ? 16000 : 30000), f);
            }
        }
        var m3hl = TrainOptions.FromFile(Path.Combine(RepoRoot(), "configs", "acdc", "m3hl.yaml"));
        Assert.Equal((LrSchedule.Constant, 30000L, 24, 12), (m3hl.Schedule, m3hl.MaxIterations, m3hl.BatchSize, m3hl.LabeledBatchSize));
        var pre = TrainOptions.FromFile(Path.Combine(RepoRoot(), "configs", "acdc", "meta-label-pretrain.yaml"));
        Assert.Equal((OptimizerKind.Radam, LrSchedule.Cosine, 2000L, 0.0), (pre.Optimizer, pre.Schedule, pre.WarmupIterations, pre.WeightDecay));
        using (var meta = (MetaLabelContrastMethod)MethodRegistry.Get(pre.Method).Create(pre.Network, new MethodSettings(pre.MethodParams)))
        {
            Assert.Equal(new ScanGroupedBatches(10, 3), meta.ScanGrouped);
            Assert.Equal(new[] { ("partition", 1.0), ("patient", 0.1), ("cycle", 0.1) }, meta.Kinds);
        }
        Assert.Contains(files, f => f.EndsWith(Path.Combine("la", "c3s3.yaml")));
        var la = TrainOptions.FromFile(Path.Combine(RepoRoot(), "configs", "la", "c3s3.yaml"));
        Assert.Equal((80, 112, 112, 2, 1, 2500), (la.PatchDepth, la.PatchHeight, la.PatchWidth, la.BatchSize, la.LabeledBatchSize, la.MaxIterations));
        var mn = TrainOptions.FromFile(Path.Combine(RepoRoot(), "configs", "la", "mn.yaml"));
        Assert.Equal((LrSchedule.Cosine, 400L, 32000L), (mn.Schedule, mn.WarmupIterations, mn.MaxIterations));
        var bcp = TrainOptions.FromFile(Path.Combine(RepoRoot(), "configs", "acdc", "bcp.yaml"));
        Assert.Equal(LrSchedule.Constant, bcp.Schedule);
        Assert.Equal(40000, bcp.MaxIterations);
    }

    [Fact]
    public void BcpDefaultsToItsReferencesConstantRateUnlessAScheduleIsGiven()
    {
        Assert.Equal(LrSchedule.Constant, TrainOptions.DefaultSchedule(false, "bcp", LrSchedule.Poly));
        Assert.Equal(LrSchedule.Poly, TrainOptions.DefaultSchedule(true, "bcp", LrSchedule.Poly));
        Assert.Equal(LrSchedule.Poly, TrainOptions.DefaultSchedule(false, "cps", LrSchedule.Poly));
    }
}
