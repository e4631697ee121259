using SemiSeg.Inference;
using System.CommandLine;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using SemiSeg.Models;
using SemiSeg.Runtime;
using SemiSeg.Training;

namespace SemiSeg.Cli.Commands;

internal static class DemoCommand
{
    public static Command Create()
    {
        var cmd = new Command("demo", "Built-in default, no download: generate a synthetic cardiac phantom (NIfTI volumes), train a supervised UNet, evaluate on the test volumes, predict masks.");
        var output = new Option<string?>("--output", "-o") { Description = "Folder for the demo (default: a new folder under the system temp folder)" };
        var iterations = new Option<long>("--iterations") { Description = "Training iterations", DefaultValueFactory = _ => 300 };
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Less progress output" };
        foreach (var o in new Option[] { output, iterations, threads, quiet }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var root = r.GetValue(output) ?? Path.Combine(Path.GetTempPath(), $"semiseg-demo-{DateTime.Now:yyyyMMdd-HHmmss}");
            if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
                throw new IOException($"demo folder '{root}' is not empty; choose another --output");
            TorchRuntime.Configure(r.GetValue(threads));
            var dataDir = Path.Combine(root, "data");
            Console.WriteLine($"1/4 generating the cardiac phantom in {dataDir} (4 labeled + 12 unlabeled training volumes, 3 val, 4 test; 8 slices of 96x96)");
            CardiacPhantom.WriteDataset(dataDir);
            var manifest = CustomDataset.Load(dataDir, 4, classNames: CardiacPhantom.ClassNames);
            Console.WriteLine($"   {manifest.Summary()}");
            var o = new TrainOptions
            {
                Method = "supervised", OutputDir = Path.Combine(root, "run"), MaxIterations = r.GetValue(iterations), PatchHeight = 96, PatchWidth = 96,
                BatchSize = 8, LabeledBatchSize = 8, ValidateEvery = Math.Max(50, (int)(r.GetValue(iterations) / 4)), SaveEvery = 100, LogEvery = 25,
                Threads = r.GetValue(threads), Network = new UNetConfig { NumClasses = 4 },
            };
            Console.WriteLine($"2/4 training a supervised UNet for {o.MaxIterations} iterations (batch {o.BatchSize}, 96x96)");
            var result = TrainCommand.RunTraining(o, manifest, r.GetValue(quiet));
            if (result.Interrupted) { Console.Error.WriteLine($"interrupted; the run so far is in {o.OutputDir}"); return 130; }
            Console.WriteLine("3/4 evaluating best.ckpt on the 4 test volumes");
            var (inferer, _) = CheckpointFile.LoadInferer(result.BestCheckpoint);
            using (inferer)
            {
                var report = Evaluator.Evaluate(inferer, manifest.Test, manifest.ClassNames, MetricMode.Spacing, EmptyPolicy.Exclude);
                var evalDir = Path.Combine(root, "run", "eval-test");
                report.Write(evalDir);
                EvaluateCommand.PrintReport(report, "phantom test volumes");
                Console.WriteLine($"   wrote {Path.Combine(evalDir, "metrics.csv")} and metrics.json");
            }
            var predDir = Path.Combine(root, "predictions");
            Console.WriteLine($"4/4 predicting the test images into {predDir}");
            int rc = Cli.Build().Parse(new[] { "predict", "--checkpoint", result.BestCheckpoint, "--input", Path.Combine(dataDir, "imagesTs"), "--output", predDir })
                .Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
            Console.WriteLine($"demo finished in {root}");
            return rc;
        });
        return cmd;
    }
}
