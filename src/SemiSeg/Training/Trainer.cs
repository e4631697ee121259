using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using SemiSeg.Methods;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Training;

public sealed record IterationInfo(long Iteration, long MaxIterations, double Loss, double LearningRate, double ItersPerSecond,
    TimeSpan Eta, double DataWaitFraction, IReadOnlyDictionary<string, double> Terms);

public sealed record ValidationInfo(long Iteration, double MeanDice, double MeanHd95, bool IsBest, double BestDice, long BestIteration, EvaluationReport Report);

/// <summary>Receives progress; the CLI renders it as a progress bar, tests ignore it.</summary>
public interface ITrainingMonitor
{
    void OnMessage(string message) { }
    void OnIteration(IterationInfo info) { }
    void OnValidation(ValidationInfo info) { }
}

public sealed record TrainingResult(long Iterations, double BestDice, long BestIteration, string BestCheckpoint, string LastCheckpoint, double SecondsPerIteration, bool Interrupted);

/// <summary>
/// The method-agnostic training loop: SGD (momentum, weight decay) with poly or constant learning rate, background
/// data loading, validation every N iterations on the validation volumes (slice-wise inference, best checkpoint by
/// mean foreground Dice), last checkpoint for resume, a log file and config.json beside the run.
/// </summary>
public sealed class Trainer
{
    readonly TrainOptions _o;
    readonly DatasetManifest _data;
    readonly ITrainingMonitor _monitor;

    public Trainer(TrainOptions options, DatasetManifest data, ITrainingMonitor? monitor = null)
    {
        CheckOptions(options, data.NumClasses, data.Labeled.Count, data.Name);
        _o = options; _data = data; _monitor = monitor ?? new NullMonitor();
    }

    internal sealed class NullMonitor : ITrainingMonitor { }

    /// <summary>What every training run checks before it starts (2D and 3D).</summary>
    internal static void CheckOptions(TrainOptions options, int dataClasses, int labeledCount, string dataName)
    {
        options.Validate();
        if (dataClasses != options.Network.NumClasses)
            throw new ArgumentException($"dataset has {dataClasses} classes but the network is configured for {options.Network.NumClasses}");
        if (labeledCount == 0) throw new ArgumentException($"{dataName}: the labeled set is empty");
    }

    /// <summary>Threads. The run folder itself (its lock, the refusal to overwrite a run that was not asked to resume)
    /// is <see cref="RunFolder.Open"/>, held for the whole run.</summary>
    public string BestPath => Path.Combine(_o.OutputDir, "best.ckpt");
    public string LastPath => Path.Combine(_o.OutputDir, "last.ckpt");

    public TrainingResult Run(CancellationToken cancel = default)
    {
        // finalizers run only at safe points from here on (TorchSharp's temporaries, see FinalizerGuard): method
        // creation, the self-check, resuming and the final saves call libtorch while the loaders allocate, too
        using var gate = FinalizerGuard.Enter();
        FinalizerGuard.SafePoint();
        TorchRuntime.Configure(_o.Threads);
        var entry = MethodRegistry.Get(_o.Method);
        using var runFolder = RunFolder.Open(_o.OutputDir, _o.Resume);
        DataCheck.Run(VolumeSplit.FromManifest(_data));
        int unlabeledBs = entry.UsesUnlabeled ? _o.BatchSize - _o.LabeledBatchSize : 0;
        if (unlabeledBs > 0 && _data.Unlabeled.Count == 0)
            throw new ArgumentException($"method '{entry.Name}' needs unlabeled data, but {_data.Name} has none");

        string selfCheck = KernelSelfCheck.Ensure(volume: false); // before seeding: it draws its own numbers
        TorchRuntime.Seed(_o.Seed);
        var settings = new MethodSettings(_o.MethodParams);
        using var method = entry.Create(_o.Network, settings);
        settings.EnsureAllUsed(entry.Name);
        if (_o.InitEncoder is string init) LoadEncoder(init, method);
        if (_o.ChannelsLast) foreach (var m in method.StatefulModules) Models.MemoryLayout.ToChannelsLast(m);
        var parameters = method.TrainableModules.SelectMany(m => m.parameters()).ToList();
        using var optimizer = _o.CreateOptimizer(parameters);

        long start = 0; double bestDice = double.NegativeInfinity; long bestIt = 0;
        long stageTwo = method is IStartsStageTwoFromBest s2 ? s2.StageTwoStart : 0;
        string stageOnePath = Path.Combine(_o.OutputDir, "stage1-best.ckpt");
        using var log = new StreamWriter(Path.Combine(_o.OutputDir, "train.log"), append: true) { AutoFlush = true };
        void Log(string line) { var l = $"[{DateTime.Now:yyyy-MM-dd HH:mm:ss}] {line}"; log.WriteLine(l); _monitor.OnMessage(line); }

        if (_o.Resume && File.Exists(LastPath))
        {
            var meta = Checkpoint.Restore(LastPath, method, optimizer, entry.Name);
            start = meta.Iteration; bestDice = double.IsNaN(meta.BestMetric) ? double.NegativeInfinity : meta.BestMetric; bestIt = meta.BestIteration;
            (bestDice, bestIt) = runFolder.PrepareResume(start, bestDice, bestIt);
            TorchRuntime.Seed(Seeds.Mix(_o.Seed, start));
            Log($"resumed from {LastPath} at iteration {start} (best mean Dice {Fmt(bestDice)} at {bestIt})");
        }
        AtomicFile.WriteAllText(Path.Combine(_o.OutputDir, "config.json"),
            JsonSerializer.Serialize(_o with { MethodParams = new Dictionary<string, string>(settings.Effective) }, TrainOptions.Json));
        Log(selfCheck);
        Log($"method {entry.Name}; {_data.Summary()}");
        Log($"batch {_o.BatchSize} ({_o.LabeledBatchSize} labeled{(unlabeledBs > 0 ? $" + {unlabeledBs} unlabeled" : "")}), patch {_o.PatchHeight}x{_o.PatchWidth}, " +
            $"{_o.MaxIterations} iterations, {_o.Optimizer} lr {_o.BaseLr} ({_o.Schedule.ToString().ToLowerInvariant()}{(_o.WarmupIterations > 0 ? $", warm-up {_o.WarmupIterations}" : "")}){(_o.Optimizer == OptimizerKind.Sgd ? $", momentum {_o.Momentum}" : "")}, wd {_o.WeightDecay}, seed {_o.Seed}, threads {torch.get_num_threads()}");

        var cache = new CaseCache(_data.NumClasses);
        var sampler = new TwoStreamBatchSampler(_data.Labeled.Count, _data.Unlabeled.Count, _o.LabeledBatchSize, unlabeledBs, _o.Seed);
        var aug = new SliceAugmenter(_o.PatchHeight, _o.PatchWidth, _o.Augment, _o.LinearImageResize);
        using var loader = new BatchLoader(_data.Labeled, _data.Unlabeled, sampler, aug, cache, _o.Seed, start, _o.Prefetch, _o.LoaderWorkers);

        CheckpointMeta Meta(long it) => new()
        {
            Method = entry.Name, Network = _o.Network, PatchHeight = _o.PatchHeight, PatchWidth = _o.PatchWidth, LinearImageResize = _o.LinearImageResize,
            ClassNames = _data.ClassNames, Iteration = it, BestMetric = double.IsNegativeInfinity(bestDice) ? double.NaN : bestDice, BestIteration = bestIt,
        };

        method.Train(true);
        var clock = Stopwatch.StartNew();
        long done = start;
        double lastLoss = double.NaN;
        var windowClock = Stopwatch.StartNew(); long windowStart = start; double windowWait = loader.WaitSeconds;
        double itPerSec = 0;
        for (long it = start; it < _o.MaxIterations; it++)
        {
            FinalizerGuard.SafePoint();
            if (cancel.IsCancellationRequested) { Log($"interrupted at iteration {it}; saving {LastPath}"); break; }
            if (stageTwo > 0 && it == stageTwo)
            {
                if (File.Exists(stageOnePath))
                {
                    var m1 = Checkpoint.Restore(stageOnePath, method, optimizer);
                    Log($"stage 2 starts from the best stage-1 checkpoint (iteration {m1.Iteration}), optimizer state included");
                }
                else Log("stage 2 starts from the last stage-1 iterate (no stage-1 validation)");
            }
            double lr = _o.LearningRateAt(it, (method as IRestartsSchedule)?.ScheduleRestart(_o.MaxIterations) ?? 0);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            var batch = loader.Next();
            var ctx = new TrainingContext(it, _o.MaxIterations, lr) { Meta = batch.Items.Select(i => i.Meta).ToArray() };
            bool logNow = (it + 1) % _o.LogEvery == 0 || it == start;
            Dictionary<string, double> terms = new();
            using (var scope = NewDisposeScope())
            {
                var x = tensor(batch.Images, new long[] { batch.Count, _o.Network.InChannels, batch.Height, batch.Width });
                var y = tensor(batch.Labels, new long[] { batch.LabeledCount, batch.Height, batch.Width });
                var step = Step(method, optimizer, _o.ChannelsLast ? Models.MemoryLayout.ToChannelsLast(x) : x, y, batch.LabeledCount, ctx);
                if (logNow)
                {
                    lastLoss = step.Loss.item<float>();
                    foreach (var (k, v) in step.Terms) terms[k] = v.item<float>();
                }
            }
            done = it + 1;
            if (logNow)
            {
                double secs = windowClock.Elapsed.TotalSeconds;
                long n = done - windowStart;
                itPerSec = n / Math.Max(secs, 1e-9);
                double waitFrac = (loader.WaitSeconds - windowWait) / Math.Max(secs, 1e-9);
                windowClock.Restart(); windowStart = done; windowWait = loader.WaitSeconds;
                var eta = TimeSpan.FromSeconds((_o.MaxIterations - done) / Math.Max(itPerSec, 1e-9));
                _monitor.OnIteration(new IterationInfo(done, _o.MaxIterations, lastLoss, lr, itPerSec, eta, waitFrac, terms));
                log.WriteLine($"[{DateTime.Now:yyyy-MM-dd HH:mm:ss}] it {done} loss {lastLoss:F4} " + string.Join(" ", terms.Select(t => $"{t.Key} {t.Value:F4}")) +
                              $" lr {lr:G4} {itPerSec:F2} it/s data-wait {100 * waitFrac:F1}%");
            }
            bool last = done == _o.MaxIterations;
            if (_data.Val.Count > 0 && (done % _o.ValidateEvery == 0 || last))
            {
                // the module the method predicts with: its UNet, or C3S3's ensemble of both networks
                var report = Evaluator.Evaluate((nn.Module<Tensor, Tensor>)method.InferenceModule, method.InferenceNetwork.Config.NumClasses, _data.Val, _o.PatchHeight, _o.PatchWidth, _o.LinearImageResize, _data.ClassNames,
                    MetricMode.Medpy, EmptyPolicy.Exclude, load: cache.Get);
                RecordValidation(report, done, ref bestDice, ref bestIt, () =>
                {
                    Checkpoint.Save(BestPath, Meta(done), method, null);
                    if (done <= stageTwo) Checkpoint.Save(stageOnePath, Meta(done), method, optimizer);
                }, method, _o.OutputDir, _monitor, Log);
            }
            if (done % _o.SaveEvery == 0 || last) Checkpoint.Save(LastPath, Meta(done), method, optimizer);
        }
        if (done < _o.MaxIterations) Checkpoint.Save(LastPath, Meta(done), method, optimizer);
        if (_data.Val.Count == 0)
        {
            // Without validation volumes the last weights are the result; say so rather than pretend a selection.
            Checkpoint.Save(BestPath, Meta(done), method, null);
            Log("no validation volumes: best.ckpt holds the last weights (checkpoint selection: last)");
        }
        double spi = clock.Elapsed.TotalSeconds / Math.Max(1, done - start);
        bool interrupted = done < _o.MaxIterations;
        Log($"{(interrupted ? "stopped after" : "finished")} {done} iterations ({spi:F3} s/iteration); best mean Dice {Fmt(bestDice)} at {bestIt}; data wait {loader.WaitSeconds:F1} s in total");
        return new TrainingResult(done, bestDice, bestIt, BestPath, LastPath, spi, interrupted);
    }

    /// <summary>
    /// Starts every UNet of a method (student, EMA teacher, second network of the same configuration) from the encoder
    /// of a checkpoint's network, e.g. the one `semiseg pretrain` writes; the decoder keeps its initialisation.
    /// </summary>
    public static int LoadEncoder(string checkpoint, ISegmentationMethod method)
    {
        var (source, _) = Checkpoint.LoadNetwork(checkpoint);
        using var _ = source;
        var encoder = source.named_parameters().Where(p => p.name.StartsWith("inConv.") || p.name.StartsWith("down.")).ToDictionary(p => p.name, p => p.parameter);
        int copied = 0;
        using var noGrad = no_grad();
        foreach (var net in method.StatefulModules.OfType<Models.UNet2D>())
            foreach (var (name, p) in net.named_parameters())
            {
                if (!encoder.TryGetValue(name, out var src)) continue;
                if (!src.shape.SequenceEqual(p.shape))
                    throw new InvalidDataException($"checkpoint '{checkpoint}': encoder parameter {name} has shape [{string.Join(",", src.shape)}], the network needs [{string.Join(",", p.shape)}]");
                p.copy_(src); copied++;
            }
        if (copied == 0) throw new InvalidDataException($"checkpoint '{checkpoint}': no encoder parameter matches the method's networks");
        return copied;
    }

    /// <summary>One optimisation step of a method: its losses, backward, the optimizer step, then the method's
    /// post-step work (EMA). The returned tensors belong to the caller's dispose scope.</summary>
    public static MethodStep Step(ITrainableMethod method, TorchSharp.Modules.OptimizerHelper optimizer, Tensor images, Tensor labels, int labeledCount, TrainingContext ctx)
    {
        var step = method.Step(images, labels, labeledCount, ctx);
        optimizer.zero_grad();
        step.Loss.backward();
        NumericGuard.EnsureFiniteStep(step.Loss, method.TrainableModules.SelectMany(m => m.parameters()), ctx.Iteration);
        optimizer.step();
        method.AfterOptimizerStep(ctx);
        return step;
    }

    /// <summary>After a validation pass (2D or 3D): best-so-far bookkeeping and the best checkpoint (by mean foreground
    /// Dice, NaN counted as 0), the method back in training mode, validation.csv, the monitor and the log line.</summary>
    internal static void RecordValidation(EvaluationReport report, long done, ref double bestDice, ref long bestIt, Action saveBest,
        ITrainableMethod method, string outputDir, ITrainingMonitor monitor, Action<string> log)
    {
        var mean = report.Mean();
        double dice = double.IsNaN(mean.Dice) ? 0 : mean.Dice;
        bool isBest = dice > bestDice;
        if (isBest)
        {
            bestDice = dice; bestIt = done;
            saveBest();
        }
        method.Train(true);
        AppendValidationCsv(outputDir, done, report);
        monitor.OnValidation(new ValidationInfo(done, dice, mean.Hd95, isBest, bestDice, bestIt, report));
        log($"validation at {done}: mean Dice {Fmt(dice)} HD95 {mean.Hd95:F2} " +
            string.Join(" ", report.Summary().Select(s => $"{s.Class} {Fmt(s.Dice)}")) + (isBest ? " (best)" : $" (best {Fmt(bestDice)} at {bestIt})"));
    }

    static void AppendValidationCsv(string outputDir, long it, EvaluationReport report)
    {
        var path = Path.Combine(outputDir, "validation.csv");
        var s = report.Summary();
        bool header = !File.Exists(path);
        using var w = new StreamWriter(path, append: true);
        if (header) w.WriteLine("iteration,mean_dice,mean_hd95," + string.Join(",", s.Select(x => $"dice_{x.Class},hd95_{x.Class}")));
        var m = report.Mean();
        w.WriteLine(string.Join(",", new[] { it.ToString(CultureInfo.InvariantCulture), Fmt(m.Dice), Fmt(m.Hd95) }
            .Concat(s.SelectMany(x => new[] { Fmt(x.Dice), Fmt(x.Hd95) }))));
    }

    internal static string Fmt(double v) => double.IsNaN(v) || double.IsInfinity(v) ? "NaN" : v.ToString("0.0000", CultureInfo.InvariantCulture);
}
