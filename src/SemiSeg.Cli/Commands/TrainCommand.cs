using System.CommandLine;
using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;

namespace SemiSeg.Cli.Commands;

internal static class TrainCommand
{
    /// <summary>`train`, or with <paramref name="pretrain"/> `pretrain`: the meta-label contrastive pre-training stage
    /// (method meta-contrast without the supervised term, no validation), whose checkpoint feeds --init-encoder.</summary>
    public static Command Create(bool pretrain = false)
    {
        var cmd = pretrain
            ? new Command("pretrain", "Self-paced meta-label contrastive pre-training of the UNet encoder on all training slices (labels unused); the written checkpoint starts any later `train --init-encoder`.")
            : new Command("train", "Train a segmentation network (supervised or semi-supervised) on 2D slices, validating on volumes.");
        var data = new DataOptions();
        data.AddTo(cmd);
        var method = new Option<string>("--method", "-m") { Description = $"Training method ({string.Join(", ", MethodRegistry.All.Select(e => e.Name))})", DefaultValueFactory = _ => "supervised" };
        var output = new Option<string>("--output", "-o") { Description = "Run folder (checkpoints, log, config.json, validation.csv)", Required = true };
        var iterations = new Option<long>("--iterations") { Description = "Training iterations", DefaultValueFactory = _ => 30000 };
        var patch = new Option<int>("--patch-size") { Description = "Training size (square), multiple of 16", DefaultValueFactory = _ => 256 };
        var batch = new Option<int>("--batch-size") { Description = "Batch size: labeled + unlabeled", DefaultValueFactory = _ => 24 };
        var labeledBs = new Option<int>("--labeled-bs") { Description = "Labeled images per batch", DefaultValueFactory = _ => 12 };
        // pre-training follows Peng et al.: RAdam, peak 2e-4 after a warm-up of 1/8 of the run (10 of 80 epochs), cosine decay
        var lr = new Option<double>("--lr") { Description = "Base (peak) learning rate", DefaultValueFactory = _ => pretrain ? 2e-4 : 0.01 };
        var schedule = new Option<LrSchedule>("--schedule") { Description = "poly: lr·(1−it/max)^0.9 (SSL4MIS); constant (BCP family); cosine", DefaultValueFactory = _ => pretrain ? LrSchedule.Cosine : LrSchedule.Poly };
        var optimizer = new Option<OptimizerKind>("--optimizer") { Description = "sgd (momentum 0.9), adam, adamw or radam", DefaultValueFactory = _ => pretrain ? OptimizerKind.Radam : OptimizerKind.Sgd };
        var warmup = new Option<long?>("--warmup") { Description = "Linear learning-rate warm-up iterations (default: 0 for train, iterations/8 for pretrain)" };
        var valEvery = new Option<int>("--val-every") { Description = "Validate every N iterations", DefaultValueFactory = _ => 200 };
        var saveEvery = new Option<int>("--save-every") { Description = "Write last.ckpt every N iterations", DefaultValueFactory = _ => 200 };
        var logEvery = new Option<int>("--log-every") { Description = "Log every N iterations", DefaultValueFactory = _ => 20 };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1337 };
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        var workers = new Option<int>("--workers") { Description = "Background data-loading workers", DefaultValueFactory = _ => 2 };
        var up = new Option<UpMode>("--up") { Description = "UNet up path: bilinear (1x1 conv + bilinear, BCP lineage) or transpose (SSL4MIS default)", DefaultValueFactory = _ => UpMode.Bilinear };
        var noAug = new Option<bool>("--no-augment") { Description = "Disable rot90/flip/rotation augmentation" };
        var linear = new Option<bool>("--linear-resize") { Description = "Bilinear image resize (the reference uses nearest)" };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --output from its last.ckpt" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Only print the final summary" };
        var param = new Option<string[]>("--param", "-p") { Description = "Method hyper-parameter key=value (repeatable); see `semiseg methods`", AllowMultipleArgumentsPerToken = false };
        var config = new Option<string?>("--config") { Description = "Configuration file (JSON, e.g. a run's config.json, or YAML) with the same snake_case keys; options given here override it" };
        var contiguous = new Option<bool>("--no-channels-last") { Description = "Keep NCHW memory order (channels_last is faster and numerically the same)" };
        var initEncoder = new Option<string?>("--init-encoder") { Description = "Start the UNet encoder(s) from this checkpoint's network (e.g. best.ckpt of `semiseg pretrain`)" };
        var options = new List<Option> { output, iterations, patch, batch, labeledBs, lr, schedule, optimizer, warmup, saveEvery, logEvery, seed, threads, workers, up, noAug, linear, resume, quiet, param, contiguous, config };
        if (!pretrain) options.AddRange(new Option[] { method, valEvery, initEncoder });
        foreach (var o in options) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var manifest = data.Load(r);
            if (pretrain) manifest = manifest.WithoutValidation();
            // defaults < --config file < options given on the command line
            var cfgPath = r.GetValue(config);
            var b = cfgPath is null ? new TrainOptions() : TrainOptions.FromFile(cfgPath);
            bool Given(Option opt) => cfgPath is null || r.GetResult(opt) is { Implicit: false };
            T V<T>(Option<T> opt, T current) => Given(opt) ? r.GetValue(opt)! : current;
            var methodParams = new Dictionary<string, string>(b.MethodParams);
            if (pretrain) { methodParams.TryAdd("supervised_weight", "0"); methodParams.TryAdd("contrast_weight", "1"); }
            foreach (var (k, v) in MethodSettings.Parse(r.GetValue(param) ?? Array.Empty<string>()).Given) methodParams[k] = v;
            var o = b with
            {
                Method = pretrain ? "meta-contrast" : V(method, b.Method), InitEncoder = pretrain ? null : V(initEncoder, b.InitEncoder), OutputDir = r.GetValue(output)!, MaxIterations = V(iterations, b.MaxIterations),
                PatchHeight = V(patch, b.PatchHeight), PatchWidth = V(patch, b.PatchWidth), BatchSize = V(batch, b.BatchSize), LabeledBatchSize = V(labeledBs, b.LabeledBatchSize),
                BaseLr = V(lr, b.BaseLr), Schedule = V(schedule, b.Schedule), Optimizer = V(optimizer, b.Optimizer), ValidateEvery = V(valEvery, b.ValidateEvery), SaveEvery = V(saveEvery, b.SaveEvery),
                LogEvery = V(logEvery, b.LogEvery), Seed = V(seed, b.Seed), Threads = V(threads, b.Threads), LoaderWorkers = V(workers, b.LoaderWorkers),
                Augment = Given(noAug) ? !r.GetValue(noAug) : b.Augment, LinearImageResize = V(linear, b.LinearImageResize), Resume = r.GetValue(resume),
                MethodParams = methodParams, ChannelsLast = Given(contiguous) ? !r.GetValue(contiguous) : b.ChannelsLast,
                Network = b.Network with { NumClasses = manifest.NumClasses, Up = V(up, b.Network.Up) },
            };
            o = o with { WarmupIterations = r.GetValue(warmup) ?? (cfgPath is null && pretrain ? o.MaxIterations / 8 : b.WarmupIterations) };
            var result = RunTraining(o, manifest, r.GetValue(quiet));
            if (pretrain) Console.WriteLine($"pre-trained encoder: {result.BestCheckpoint} (use with train --init-encoder); resumable state: {result.LastCheckpoint}");
            else
            {
                Console.WriteLine($"best mean foreground Dice on validation: {result.BestDice:F4} at iteration {result.BestIteration}");
                Console.WriteLine($"checkpoints: {result.BestCheckpoint} (best), {result.LastCheckpoint} (last, resumable)");
            }
            if (result.Interrupted)
            {
                Console.Error.WriteLine($"interrupted at iteration {result.Iterations}: continue with the same command plus --resume");
                return 130;
            }
            return 0;
        });
        return cmd;
    }

    public static TrainingResult RunTraining(TrainOptions o, Data.DatasetManifest manifest, bool quiet)
    {
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cts.IsCancellationRequested) return; // a second Ctrl+C ends the process
            e.Cancel = true;
            cts.Cancel();
            Console.Error.WriteLine("interrupt: finishing the current iteration and saving last.ckpt (resume with --resume)...");
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            return ConsoleMonitor.Run(o.MaxIterations, quiet, m => new Trainer(o, manifest, m).Run(cts.Token));
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }
}
