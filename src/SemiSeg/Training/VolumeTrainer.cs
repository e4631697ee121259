using System.Diagnostics;
using System.Text.Json;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using SemiSeg.Methods;
using SemiSeg.Methods.Volume;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>
/// The training loop for 3D methods (<see cref="IVolumeMethod"/>): batches of randomly cropped, rotated and flipped
/// volume patches (labeled first; the method decides the labeled/unlabeled composition of each batch), the same
/// optimizers, schedules (incl. the LA lineage's step decay), logging, config.json and resumable checkpoints as the 2D
/// <see cref="Trainer"/>, validation by sliding-window inference on the validation volumes (best checkpoint by mean
/// foreground Dice) or, without validation volumes (the LA protocol), the last weights as the result.
/// </summary>
public sealed class VolumeTrainer
{
    readonly TrainOptions _o;
    readonly VolumeSplit _data;
    readonly ITrainingMonitor _monitor;

    public VolumeTrainer(TrainOptions options, VolumeSplit data, ITrainingMonitor? monitor = null)
    {
        if (options.Network3D is null) throw new ArgumentException("a 3D training run needs a 3D network (Network3D)");
        Trainer.CheckOptions(options, data.NumClasses, data.Labeled.Count, data.Name);
        if (options.InitEncoder is not null)
            throw new ArgumentException("--init-encoder starts a 2D UNet; a 3D run's 2D branch (M&N) takes a checkpoint as --param init_2d=PATH");
        _o = options; _data = data; _monitor = monitor ?? new Trainer.NullMonitor();
    }

    public string BestPath => Path.Combine(_o.OutputDir, "best.ckpt");
    public string LastPath => Path.Combine(_o.OutputDir, "last.ckpt");

    public TrainingResult Run(CancellationToken cancel = default)
    {
        // finalizers run only at safe points from here on (TorchSharp's temporaries, see FinalizerGuard): method
        // creation, the self-check, resuming and the final saves call libtorch while the loaders allocate, too
        using var gate = FinalizerGuard.Enter();
        FinalizerGuard.SafePoint();
        TorchRuntime.Configure(_o.Threads);
        var entry = VolumeMethodRegistry.Get(_o.Method);
        string selfCheck = KernelSelfCheck.Ensure(volume: true); // before seeding: it draws its own numbers
        TorchRuntime.Seed(_o.Seed);
        using var runFolder = RunFolder.Open(_o.OutputDir, _o.Resume);
        DataCheck.Run(_data);
        var settings = new MethodSettings(_o.MethodParams);
        using var method = entry.Create(new VolumeMethodContext(_o.Network3D!, _o.Network, settings));
        settings.EnsureAllUsed(entry.Name);
        // the composition of every batch is known up front; check the data can fill it before the first step
        var composition = (long b) => method.Composition(b, _o.MaxIterations, _o.BatchSize, _o.LabeledBatchSize);
        if (_data.Unlabeled.Count == 0 && composition(_o.MaxIterations - 1).unlabeled > 0)
            throw new ArgumentException($"method '{entry.Name}' needs unlabeled volumes, but {_data.Name} has none");
        var parameters = method.TrainableModules.SelectMany(m => m.parameters()).ToList();
        using var optimizer = _o.CreateOptimizer(parameters);

        long start = 0; double bestDice = double.NegativeInfinity; long bestIt = 0;
        using var log = new StreamWriter(Path.Combine(_o.OutputDir, "train.log"), append: true) { AutoFlush = true };
        void Log(string line) { log.WriteLine($"[{DateTime.Now:yyyy-MM-dd HH:mm:ss}] {line}"); _monitor.OnMessage(line); }
        if (_o.Resume && File.Exists(LastPath))
        {
            var meta = Checkpoint.Restore(LastPath, method, optimizer, entry.Name);
            if (meta.Network3D is null) throw new InvalidDataException($"checkpoint '{LastPath}' is a 2D run; it cannot resume a 3D training");
            start = meta.Iteration; bestDice = double.IsNaN(meta.BestMetric) ? double.NegativeInfinity : meta.BestMetric; bestIt = meta.BestIteration;
            (bestDice, bestIt) = runFolder.PrepareResume(start, bestDice, bestIt);
            TorchRuntime.Seed(Seeds.Mix(_o.Seed, start));
            Log($"resumed from {LastPath} at iteration {start} (best mean Dice {Trainer.Fmt(bestDice)} at {bestIt})");
        }
        AtomicFile.WriteAllText(Path.Combine(_o.OutputDir, "config.json"),
            JsonSerializer.Serialize(_o with { MethodParams = new Dictionary<string, string>(settings.Effective) }, TrainOptions.Json));
        var (d, h, w) = _o.Patch3D;
        Log(selfCheck);
        Log($"method {entry.Name} (3D, {_o.Network3D!.Describe()}); {_data.Summary()}");
        Log($"batch {_o.BatchSize} (composition at start {composition(start).labeled}+{composition(start).unlabeled}), patch {d}x{h}x{w}, {_o.MaxIterations} iterations, " +
            $"{_o.Optimizer} lr {_o.BaseLr} ({_o.Schedule.ToString().ToLowerInvariant()}), wd {_o.WeightDecay}, seed {_o.Seed}, threads {torch.get_num_threads()}");

        var sampler = new VolumeBatchSampler(_data.Labeled.Count, _data.Unlabeled.Count, _o.BatchSize, composition, _o.Seed);
        using var loader = new VolumeBatchLoader(_data, sampler, _o.Patch3D, _o.Augment, _o.Seed, start, prefetch: 2, workers: Math.Max(1, _o.LoaderWorkers));
        CheckpointMeta Meta(long it) => new()
        {
            Method = entry.Name, Network = _o.Network, Network3D = _o.Network3D, PatchDepth = d, PatchHeight = h, PatchWidth = w,
            ClassNames = _data.ClassNames.ToArray(), Iteration = it, BestMetric = double.IsNegativeInfinity(bestDice) ? double.NaN : bestDice, BestIteration = bestIt,
        };

        method.Train(true);
        var clock = Stopwatch.StartNew();
        var windowClock = Stopwatch.StartNew(); long windowStart = start; double windowWait = 0;
        long done = start;
        for (long it = start; it < _o.MaxIterations; it++)
        {
            FinalizerGuard.SafePoint();
            if (cancel.IsCancellationRequested) { Log($"interrupted at iteration {it}; saving {LastPath}"); break; }
            double lr = _o.LearningRateAt(it, (method as IRestartsSchedule)?.ScheduleRestart(_o.MaxIterations) ?? 0);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            var batch = loader.Next();
            var ctx = new TrainingContext(it, _o.MaxIterations, lr);
            bool logNow = (it + 1) % _o.LogEvery == 0 || it == start;
            double loss = double.NaN; var terms = new Dictionary<string, double>();
            using (var scope = NewDisposeScope())
            {
                var x = tensor(batch.Images, new long[] { batch.Count, _o.Network.InChannels, d, h, w });
                var y = tensor(batch.Labels, new long[] { batch.LabeledCount, d, h, w });
                var step = Trainer.Step(method, optimizer, x, y, batch.LabeledCount, ctx);
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
                              $" batch {batch.LabeledCount}+{batch.Count - batch.LabeledCount} lr {lr:G4} {itPerSec:F3} it/s data-wait {100 * waitFrac:F1}%");
            }
            bool last = done == _o.MaxIterations;
            if (_data.Val.Count > 0 && (done % _o.ValidateEvery == 0 || last))
            {
                var report = Evaluator.Evaluate3D(method.InferenceNetwork, _data.NumClasses, _data.Val, _o.Patch3D, _o.Stride, _data.ClassNames,
                    MetricMode.Medpy, EmptyPolicy.Exclude, load: loader.Get);
                Trainer.RecordValidation(report, done, ref bestDice, ref bestIt, () => Checkpoint.Save(BestPath, Meta(done), method, null), method, _o.OutputDir, _monitor, Log);
            }
            if (done % _o.SaveEvery == 0 || last) Checkpoint.Save(LastPath, Meta(done), method, optimizer);
        }
        if (done < _o.MaxIterations) Checkpoint.Save(LastPath, Meta(done), method, optimizer);
        if (_data.Val.Count == 0)
        {
            Checkpoint.Save(BestPath, Meta(done), method, null);
            Log("no validation volumes: best.ckpt holds the last weights (checkpoint selection: last)");
        }
        double spi = clock.Elapsed.TotalSeconds / Math.Max(1, done - start);
        Log($"{(done < _o.MaxIterations ? "stopped after" : "finished")} {done} iterations ({spi:F3} s/iteration); best mean Dice {Trainer.Fmt(bestDice)} at {bestIt}; " +
            $"data wait {loader.WaitSeconds:F1} s; peak resident memory {Benchmark.PeakRssMiB() / 1024:F2} GiB");
        return new TrainingResult(done, bestDice, bestIt, BestPath, LastPath, spi, done < _o.MaxIterations);
    }
}
