using SemiSeg.Inference;
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

    /// <summary>Both monitors, in order (e.g. the CLI's progress bar and the run's curves.png).</summary>
    static ITrainingMonitor Both(ITrainingMonitor first, ITrainingMonitor second) => new Pair(first, second);

    sealed class Pair(ITrainingMonitor a, ITrainingMonitor b) : ITrainingMonitor
    {
        public void OnMessage(string message) { a.OnMessage(message); b.OnMessage(message); }
        public void OnIteration(IterationInfo info) { a.OnIteration(info); b.OnIteration(info); }
        public void OnValidation(ValidationInfo info) { a.OnValidation(info); b.OnValidation(info); }
    }
}

public sealed record TrainingResult(long Iterations, double BestDice, long BestIteration, string BestCheckpoint, string LastCheckpoint, double SecondsPerIteration, bool Interrupted);

/// <summary>
/// The method-agnostic training loop, for 2D slices and 3D patches alike (what differs is a <see cref="TrainingData"/>:
/// batches, method registry variant, validator): SGD (momentum, weight decay) or the Adam family with poly, constant,
/// cosine or step learning rate, background data loading, validation every N iterations on the validation volumes
/// through an <see cref="Inference.IInferer"/> (slice-wise or sliding window; best checkpoint by mean foreground Dice),
/// last checkpoint for resume, a log file and config.json beside the run; without validation volumes (the LA protocol)
/// the last weights are the result.
/// </summary>
public sealed class Trainer
{
    readonly TrainOptions _o;
    readonly TrainingData _data;
    readonly ITrainingMonitor _monitor;

    /// <summary>A 2D dataset: slices for a 2D network, its volumes for a 3D one (<see cref="TrainOptions.Network3D"/>).</summary>
    public Trainer(TrainOptions options, DatasetManifest data, ITrainingMonitor? monitor = null) : this(options, TrainingData.For(options, data), monitor) { }

    /// <summary>Volumes (LA, ACDC volumes): a 3D network's run.</summary>
    public Trainer(TrainOptions options, VolumeSplit data, ITrainingMonitor? monitor = null) : this(options, TrainingData.For(data), monitor) { }

    public Trainer(TrainOptions options, TrainingData data, ITrainingMonitor? monitor = null)
    {
        if (data.Volumetric && options.Network3D is null) throw new ArgumentException("a 3D training run needs a 3D network (Network3D)");
        if (data.Volumetric && options.InitEncoder is not null)
            throw new ArgumentException("--init-encoder starts a 2D network; a 3D run's 2D branch (M&N) takes its weights as --param init_2d=PATH");
        options.Validate();
        if (data.NumClasses != options.Network.NumClasses)
            throw new ArgumentException($"dataset has {data.NumClasses} classes but the network is configured for {options.Network.NumClasses}");
        if (data.LabeledCount == 0) throw new ArgumentException($"{data.Name}: the labeled set is empty");
        _o = options; _data = data; _monitor = monitor ?? new NullMonitor();
    }

    internal sealed class NullMonitor : ITrainingMonitor { }

    public string BestPath => Path.Combine(_o.OutputDir, "best.ckpt");
    public string LastPath => Path.Combine(_o.OutputDir, "last.ckpt");

    public TrainingResult Run(CancellationToken cancel = default)
    {
        // finalizers run only at safe points from here on (TorchSharp's temporaries, see FinalizerGuard): method
        // creation, the self-check, resuming and the final saves call libtorch while the loaders allocate, too
        using var gate = FinalizerGuard.Enter();
        FinalizerGuard.SafePoint();
        TorchRuntime.Configure(_o.Threads);
        var device = ComputeDevice.Resolve(_o.Device); // before anything is written: a wrong --device fails at once
        // the run folder itself (its lock, the refusal to overwrite a run that was not asked to resume), for the whole run
        using var runFolder = RunFolder.Open(_o.OutputDir, _o.Resume);
        DataCheck.Run(_data.Split);
        Provenance.Record(_o.OutputDir, Provenance.WithDevice(_data.DescribeProvenance(), device), _o.Resume);
        var settings = new MethodSettings(_o.MethodParams);
        string selfCheck = KernelSelfCheck.Ensure(volume: _data.Volumetric); // before seeding: it draws its own numbers
        TorchRuntime.Seed(_o.Seed);
        using var method = _data.CreateMethod(_o, settings, out string name);
        settings.EnsureAllUsed(name);
        // the data checks the method's batches; meta-label methods switch off kinds that take one value on it (warnings)
        var dataWarnings = _data.CheckComposition(_o, method, name);
        if (_o.InitEncoder is string init) LoadEncoder(init, (ISegmentationMethod)method);
        string? initFrom = _o.InitFrom is string from ? InitialWeights.Apply(from, method) : null;
        // built and initialised on the host, then moved: networks, EMA teachers, memories (module buffers)
        ComputeDevice.Place(method.StatefulModules.Append(method.InferenceModule), device);
        bool channelsLast = _o.ChannelsLast; // channels_last for 2D, channels_last_3d for volumes
        if (channelsLast) foreach (var m in method.StatefulModules) Models.MemoryLayout.ToChannelsLast(m);
        var parameters = method.TrainableModules.SelectMany(m => m.parameters()).ToList();
        using var optimizer = _o.CreateOptimizer(parameters);

        long start = 0; double bestDice = double.NegativeInfinity; long bestIt = 0;
        long stageTwo = method is IStartsStageTwoFromBest s2 ? s2.StageTwoStart : 0;
        string stageOnePath = Path.Combine(_o.OutputDir, "stage1-best.ckpt");
        using var log = new StreamWriter(Path.Combine(_o.OutputDir, "train.log"), append: true) { AutoFlush = true };
        void Log(string line) { log.WriteLine($"[{DateTime.Now:yyyy-MM-dd HH:mm:ss}] {line}"); _monitor.OnMessage(line); }
        var tensorBoard = _o.TensorBoard ? new TensorBoardLog(_o.OutputDir) : null;
        using var iterations = new IterationLog(_o.OutputDir);

        if (_o.Resume && File.Exists(LastPath))
        {
            var meta = Checkpoint.Restore(LastPath, method, optimizer, name);
            if ((meta.Network3D is not null) != _data.Volumetric)
                throw new InvalidDataException($"checkpoint '{LastPath}' is a {(meta.Network3D is null ? "2D" : "3D")} run; it cannot resume a {(_data.Volumetric ? "3D" : "2D")} training");
            start = meta.Iteration; bestDice = double.IsNaN(meta.BestMetric) ? double.NegativeInfinity : meta.BestMetric; bestIt = meta.BestIteration;
            (bestDice, bestIt) = runFolder.PrepareResume(start, bestDice, bestIt);
            // every generator reseeded from the seed and the iteration (a GPU's too), then the CPU generator put back
            // where the interrupted run left it, so that dropout masks and noise continue as without the interruption
            TorchRuntime.Seed(Seeds.Mix(_o.Seed, start));
            if (meta.RandomState is string state)
            {
                try { TorchRuntime.SetRandomState(state); }
                catch (Exception e) { throw new InvalidDataException($"checkpoint '{LastPath}': its random-generator state cannot be restored ({e.Message})", e); }
            }
            Log($"resumed from {LastPath} at iteration {start} (best mean Dice {Fmt(bestDice)} at {bestIt}; " +
                (meta.RandomState is null ? "no random-generator state in it: reseeded from the seed and the iteration)" : "random-generator state restored)"));
        }
        AtomicFile.WriteAllText(Path.Combine(_o.OutputDir, "config.json"),
            JsonSerializer.Serialize(_o with { MethodParams = new Dictionary<string, string>(settings.Effective) }, JsonFormat.Options));
        Log(selfCheck);
        if (initFrom != null) Log(initFrom);
        Log($"method {_data.DescribeMethod(_o, name)}; {_data.Summary()}");
        foreach (var w in dataWarnings) Log(w);
        var summary = new RunSummary
        {
            Method = name, Network = _data.Volumetric ? _o.Network3D!.Describe() : Models.Segmenter2D.Name(_o.Network.Kind), Data = _data.Summary(),
            Iterations = start, MaxIterations = _o.MaxIterations,
        };
        summary.Write(_o.OutputDir);
        Log($"{_data.DescribeBatches(_o, method, start)}, device {ComputeDevice.Describe(device)}, threads {torch.get_num_threads()}, allocator {Runtime.TorchRuntime.AllocatorDescription}");

        using var loader = _data.OpenBatches(_o, method, start);
        using var validator = _data.Validator(_o, method);
        var metaBase = _data.Meta(_o, name);
        CheckpointMeta Meta(long it) => metaBase with
        {
            Iteration = it, BestMetric = double.IsNegativeInfinity(bestDice) ? double.NaN : bestDice, BestIteration = bestIt, Created = DateTime.UtcNow.ToString("O"),
        };

        method.Train(true);
        var clock = Stopwatch.StartNew();
        long done = start;
        var windowClock = Stopwatch.StartNew(); long windowStart = start; double windowWait = loader.WaitSeconds;
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
            var ctx = new TrainingContext(it, _o.MaxIterations, lr) { Meta = batch.Meta };
            bool logNow = (it + 1) % _o.LogEvery == 0 || it == start;
            double loss = double.NaN; var terms = new Dictionary<string, double>();
            using (var scope = NewDisposeScope())
            {
                var x = ComputeDevice.Upload(batch.Images, batch.ImageShape, device);
                var y = ComputeDevice.Upload(batch.Labels, batch.LabelShape, device);
                var step = Step(method, optimizer, channelsLast ? Models.MemoryLayout.ToChannelsLast(x) : x, y, batch.LabeledCount, ctx);
                if (logNow)
                {
                    loss = step.Loss.item<float>();
                    foreach (var (k, v) in step.Terms) terms[k] = v.item<float>();
                }
            }
            done = it + 1;
            if (logNow)
            {
                double secs = windowClock.Elapsed.TotalSeconds, itPerSec = (done - windowStart) / Math.Max(secs, 1e-9);
                double waitFrac = (loader.WaitSeconds - windowWait) / Math.Max(secs, 1e-9);
                windowClock.Restart(); windowStart = done; windowWait = loader.WaitSeconds;
                _monitor.OnIteration(new IterationInfo(done, _o.MaxIterations, loss, lr, itPerSec,
                    TimeSpan.FromSeconds((_o.MaxIterations - done) / Math.Max(itPerSec, 1e-9)), waitFrac, terms));
                log.WriteLine($"[{DateTime.Now:yyyy-MM-dd HH:mm:ss}] it {done} loss {loss:F4} " + string.Join(" ", terms.Select(t => $"{t.Key} {t.Value:F4}")) +
                              $"{_data.DescribeBatch(batch)} lr {lr:G4} {itPerSec:F2} it/s data-wait {100 * waitFrac:F1}%");
                iterations.Append(new IterationRecord(done, loss, lr, terms, itPerSec, waitFrac, IterationLog.Now()));
                tensorBoard?.Training(done, new[] { ("loss", loss), ("lr", lr) }.Concat(terms.Select(t => (t.Key, t.Value))));
            }
            bool last = done == _o.MaxIterations;
            if (_data.Val.Count > 0 && (done % _o.ValidateEvery == 0 || last))
            {
                var pictures = new List<(string Case, byte[] Png)>();
                var report = Evaluator.Evaluate(validator, _data.Val, _data.ClassNames, MetricMode.Medpy, EmptyPolicy.Exclude, load: loader.Get,
                    onPrediction: tensorBoard is null ? null : (c, vol, pred) =>
                    {
                        if (pictures.Count < ValidationPictures) pictures.Add((c.Name, ValidationPanel(vol, pred, _data.ClassNames, done)));
                    });
                RecordValidation(report, done, ref bestDice, ref bestIt, () =>
                {
                    Checkpoint.Save(BestPath, Meta(done), method, null);
                    if (done <= stageTwo) Checkpoint.Save(stageOnePath, Meta(done), method, optimizer);
                }, method, _o.OutputDir, _monitor, Log);
                if (tensorBoard is not null)
                {
                    var mean = report.Mean();
                    tensorBoard.Validation(done, mean.Dice, mean.Hd95, report.Summary().Select(c => (c.Class, c.Dice)));
                    foreach (var (c, png) in pictures) tensorBoard.Image("val/" + c, png, done);
                }
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
        Log($"{(interrupted ? "stopped after" : "finished")} {done} iterations ({spi:F3} s/iteration); best mean Dice {Fmt(bestDice)} at {bestIt}; " +
            $"data wait {loader.WaitSeconds:F1} s; peak resident memory {Benchmark.PeakRssMiB() / 1024:F2} GiB");
        (summary with
        {
            Iterations = done, Finished = !interrupted, SecondsPerIteration = spi, BestIteration = bestIt,
            BestValidationDice = double.IsNegativeInfinity(bestDice) ? double.NaN : bestDice,
        }).Write(_o.OutputDir);
        return new TrainingResult(done, bestDice, bestIt, BestPath, LastPath, spi, interrupted);
    }

    /// <summary>
    /// Starts every network of a method that has the run's 2D network kind (student, EMA teacher, second network of the
    /// same configuration) from an encoder: a checkpoint's network (e.g. the one `semiseg pretrain` writes) or a
    /// PyTorch state dict (e.g. torchvision's ImageNet ResNet, see <see cref="Interop.PretrainedWeights"/>); the decoder
    /// keeps its initialisation.
    /// </summary>
    public static int LoadEncoder(string checkpoint, ISegmentationMethod method)
    {
        var kind = method.InferenceNetwork.Config.Kind;
        var targets = method.StatefulModules.OfType<Models.Segmenter2D>().Where(n => n.Config.Kind == kind).ToList();
        if (Interop.StateDictFile.Recognise(checkpoint)) return Interop.PretrainedWeights.LoadEncoder(checkpoint, targets);
        var (source, _) = CheckpointFile.LoadNetwork(checkpoint);
        using var _ = source;
        if (source.Config.Kind != kind)
            throw new InvalidDataException($"checkpoint '{checkpoint}' holds a {Models.Segmenter2D.Name(source.Config.Kind)} network; this run trains {Models.Segmenter2D.Name(kind)}");
        var encoder = source.named_parameters().Where(p => source.EncoderPrefixes.Any(pre => p.name.StartsWith(pre))).ToDictionary(p => p.name, p => p.parameter);
        int copied = 0;
        using var noGrad = no_grad();
        foreach (var net in targets)
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

    /// <summary>How many validation cases (the first ones) TensorBoard shows as pictures at each validation.</summary>
    public const int ValidationPictures = 2;

    /// <summary>One validation case as TensorBoard shows it: the slice with the most ground-truth foreground, image |
    /// ground truth | prediction.</summary>
    static byte[] ValidationPanel(Volume vol, byte[] pred, IReadOnlyList<string> classNames, long iteration)
    {
        int z = OverlayPanel.ShowSlice(vol.Label, pred, vol.Depth, vol.SliceSize);
        var slice = pred.AsSpan(z * vol.SliceSize, vol.SliceSize).ToArray();
        return OverlayPanel.Render(vol.SliceImage(z), vol.Height, vol.Width, vol.SliceLabel(z), slice, classNames,
            $"{vol.Name} slice {z}, iteration {iteration}");
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
