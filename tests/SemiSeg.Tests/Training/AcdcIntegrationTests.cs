using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using SemiSeg.Models;
using SemiSeg.Training;

namespace SemiSeg.Tests.Training;

/// <summary>Real ACDC files (../shared/data/acdc): the protocol's splits, a few training iterations, one evaluated volume.</summary>
public class AcdcIntegrationTests
{
    [SkippableFact]
    public void ProtocolSplitsMatchTheLiterature()
    {
        var root = SharedData.AcdcRoot();
        Skip.If(root == null, SharedData.MissingMessage);
        var m3 = AcdcDataset.Load(root!, 3);
        Assert.Equal(68, m3.Labeled.Count);
        Assert.Equal(1312 - 68, m3.Unlabeled.Count);
        Assert.Equal(new[] { "patient099", "patient038", "patient050" }, m3.Labeled.Select(s => s.Meta.Patient).Distinct());
        var m7 = AcdcDataset.Load(root!, 7);
        Assert.Equal(136, m7.Labeled.Count);
        Assert.Equal(7, m7.Labeled.Select(s => s.Meta.Patient).Distinct().Count());
        Assert.Equal(20, m7.Val.Count);
        Assert.Equal(40, m7.Test.Count);
        Assert.All(m7.Unlabeled, s => Assert.Null(s.Case.LabelPath));
        Assert.Contains("not a protocol setting", Assert.Throws<ArgumentException>(() => AcdcDataset.Load(root!, 5)).Message);
    }

    [SkippableFact]
    public void VolumesOfTheLabeledPatientsTrainA3DNetwork()
    {
        var root = SharedData.AcdcRoot();
        Skip.If(root == null, SharedData.MissingMessage);
        var v = AcdcDataset.LoadVolumes(root!, 3);
        // both phases of the 3 labeled patients, the other 67 patients' 134 volumes unlabeled
        Assert.Equal(6, v.Labeled.Count);
        Assert.Equal(140 - 6, v.Unlabeled.Count);
        Assert.All(v.Labeled, c => Assert.Matches("^patient(099|038|050)_frame", c.Name));
        Assert.Equal((20, 40), (v.Val.Count, v.Test.Count));
        var vol = v.Reader(v.Labeled[0]);
        Assert.True(vol.Depth >= 6 && vol.Label is not null);
        // this copy ships training volumes as slices: the stack holds slice_2 at z = 1
        var slice2 = Path.Combine(root!, "data", v.Labeled[0].Name + "_slice_2.h5");
        if (File.Exists(slice2)) Assert.Equal(Hdf5.Read(slice2, true).Image, vol.SliceImage(1));
        using var t = new TempDir();
        var o = new TrainOptions
        {
            OutputDir = t["run"], Method = "supervised", MaxIterations = 2, PatchDepth = 16, PatchHeight = 64, PatchWidth = 64, BatchSize = 2,
            LabeledBatchSize = 2, ChannelsLast = false, Network3D = new Net3DConfig { Kind = Net3DKind.Unet3d, Filters = 8 }, SaveEvery = 2,
        };
        var r = new Trainer(o, v with { Val = Array.Empty<CaseRef>() }).Run();
        Assert.Equal(2, r.Iterations);
    }

    [SkippableFact]
    public void TrainsAFewIterationsOnRealSlicesAndEvaluatesOneVolume()
    {
        var root = SharedData.AcdcRoot();
        Skip.If(root == null, SharedData.MissingMessage);
        using var t = new TempDir();
        var full = AcdcDataset.Load(root!, 3);
        var m = new DatasetManifest
        {
            Name = full.Name, NumClasses = 4, ClassNames = full.ClassNames, Labeled = full.Labeled, Unlabeled = full.Unlabeled,
            Val = full.Val.Take(1).ToList(), Test = full.Test.Take(1).ToList(),
        };
        var o = new TrainOptions
        {
            OutputDir = t["run"], MaxIterations = 4, PatchHeight = 64, PatchWidth = 64, BatchSize = 4, LabeledBatchSize = 4, ValidateEvery = 4, LogEvery = 1,
        };
        var res = new Trainer(o, m).Run();
        Assert.Equal(4, res.Iterations);
        var (inferer, _) = CheckpointFile.LoadInferer(res.BestCheckpoint);
        using var _i = inferer;
        var report = Evaluator.Evaluate(inferer, m.Test, m.ClassNames, MetricMode.Medpy, EmptyPolicy.Exclude);
        Assert.Single(report.Cases);
        Assert.Equal(3, report.Cases[0].Classes.Count);
        Assert.All(report.Cases[0].Classes, c => Assert.InRange(c.Dice, 0, 1));
        Assert.Contains(m.Test[0].Name, report.ToCsv());
    }
}
