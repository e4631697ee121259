using SemiSeg.Data;
using SemiSeg.Models;
using SemiSeg.Reporting;
using SemiSeg.Training;

namespace SemiSeg.Tests.Training;

public class IterationLogTests
{
    static IterationRecord R(long it, double loss) =>
        new(it, loss, 0.01, new Dictionary<string, double> { ["sup"] = loss / 2, ["cons"] = double.NaN }, 2.5, 0.1, "t");

    [Fact]
    public void AResumedSegmentReplacesWhatItRepeatsAndACutLineIsSkipped()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["run"]);
        using (var log = new IterationLog(t["run"]))
            foreach (var it in new long[] { 10, 20, 30, 40 }) log.Append(R(it, it));
        // the run died after 40 with last.ckpt at 20; resumed, it logs 30 again, then is cut mid-line
        using (var log = new IterationLog(t["run"])) log.Append(R(30, 300));
        File.AppendAllText(Path.Combine(t["run"], IterationLog.FileName), "{\"iteration\": 40, \"lo");
        using (var log = new IterationLog(t["run"])) { log.Append(R(40, 400)); log.Append(R(50, 500)); }
        var records = IterationLog.Read(t["run"]);
        Assert.Equal(new long[] { 10, 20, 30, 40, 50 }, records.Select(r => r.Iteration));
        Assert.Equal(new double[] { 10, 20, 300, 400, 500 }, records.Select(r => r.Loss));
        Assert.Equal(250, records[^1].Terms["sup"]);
        Assert.True(double.IsNaN(records[^1].Terms["cons"]));   // written as null, read back as NaN
        Assert.Empty(IterationLog.Read(t["nothing"]));
    }

    [Fact]
    public void ARunsHistoryReadFromTheDataEqualsTheOneParsedFromItsLog()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 3, size: 32);
        var run = t["run"];
        var o = new TrainOptions
        {
            OutputDir = run, Method = "cps", MaxIterations = 6, PatchHeight = 32, PatchWidth = 32, BatchSize = 4, LabeledBatchSize = 2,
            ValidateEvery = 3, SaveEvery = 3, LogEvery = 2, Network = new UNetConfig(), Threads = 1, TensorBoard = false,
        };
        new Trainer(o, CustomDataset.Load(t["data"], 4)).Run();
        var fromData = RunHistory.Load(run);
        File.Move(Path.Combine(run, IterationLog.FileName), Path.Combine(run, "moved.jsonl"));
        var fromLog = RunHistory.Load(run);
        Assert.Equal(fromLog.Training.Keys.OrderBy(k => k), fromData.Training.Keys.OrderBy(k => k));
        Assert.Contains("loss", fromData.Training.Keys);
        Assert.Contains("lr", fromData.Training.Keys);
        Assert.True(fromData.Training.Count >= 4, "loss, lr and CPS's terms (logged at every log line)");
        foreach (var (name, series) in fromData.Training)
        {
            Assert.Equal(new long[] { 1, 2, 4, 6 }, series.Select(p => p.It)); // the first iteration and every second
            // train.log prints 4 decimals (lr 4 significant digits): the data holds the unrounded values
            foreach (var (a, b) in series.Zip(fromLog.Training[name]))
                Assert.Equal(b.Value, a.Value, name == "lr" ? Math.Abs(a.Value) * 5e-4 : 5e-5 + 1e-9);
        }
    }
}
