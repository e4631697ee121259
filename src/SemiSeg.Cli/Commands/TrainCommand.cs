using System.CommandLine;
using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Data;
using SemiSeg.Training;

namespace SemiSeg.Cli.Commands;

internal static class TrainCommand
{
    /// <summary>`train`, or with <paramref name="pretrain"/> `pretrain`: the meta-label contrastive pre-training stage
    /// (method meta-contrast without the supervised term, no validation), whose checkpoint feeds --init-encoder.</summary>
    public static Command Create(bool pretrain = false)
    {
        var cmd = pretrain
            ? new Command("pretrain", "Self-paced meta-label contrastive pre-training of the UNet encoder on all training slices (labels unused; --labeled does not matter), in batches of scans_per_batch scans (default 10) x one slice per partition (Peng et al.); the written checkpoint starts any later `train --init-encoder`.")
            : new Command("train", "Train a segmentation network (supervised or semi-supervised) on 2D slices, validating on volumes.");
        var data = new DataOptions();
        data.AddTo(cmd);
        var method = new Option<string>("--method", "-m") { Description = $"Training method ({string.Join(", ", MethodRegistry.All.Select(e => e.Name))})", DefaultValueFactory = _ => "supervised" };
        var output = new Option<string>("--output", "-o") { Description = "Run folder (checkpoints, log, config.json, validation.csv)", Required = true };
        // pre-training: the reference's 80 epochs x 200 batches
        var iterations = new Option<long>("--iterations") { Description = "Training iterations", DefaultValueFactory = _ => pretrain ? 16000 : 30000 };
        var patch = new Option<int>("--patch-size") { Description = "Training size (square), multiple of 16", DefaultValueFactory = _ => 256 };
        var batch = new Option<int>("--batch-size") { Description = "Batch size: labeled + unlabeled", DefaultValueFactory = _ => 24 };
        var labeledBs = new Option<int>("--labeled-bs") { Description = "Labeled images per batch", DefaultValueFactory = _ => 12 };
        // pre-training follows Peng et al.: RAdam, peak 2e-4 after a warm-up of 1/8 of the run (10 of 80 epochs), cosine decay
        var lr = new Option<double>("--lr") { Description = "Base (peak) learning rate", DefaultValueFactory = _ => pretrain ? 2e-4 : 0.01 };
        var schedule = new Option<LrSchedule>("--schedule") { Description = "poly: lr·(1−it/max)^0.9 (SSL4MIS); constant (BCP family); cosine. Default: poly, constant for bcp (its reference's ACDC schedule)", DefaultValueFactory = _ => pretrain ? LrSchedule.Cosine : LrSchedule.Poly };
        var optimizer = new Option<OptimizerKind>("--optimizer") { Description = "sgd (momentum 0.9), adam, adamw or radam", DefaultValueFactory = _ => pretrain ? OptimizerKind.Radam : OptimizerKind.Sgd };
        var warmup = new Option<long?>("--warmup") { Description = "Linear learning-rate warm-up iterations (default: 0 for train, iterations/8 for pretrain)" };
        var valEvery = new Option<int>("--val-every") { Description = "Validate every N iterations", DefaultValueFactory = _ => 200 };
        var saveEvery = new Option<int>("--save-every") { Description = "Write last.ckpt every N iterations", DefaultValueFactory = _ => 200 };
        var logEvery = new Option<int>("--log-every") { Description = "Log every N iterations", DefaultValueFactory = _ => 20 };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1337 };
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        var workers = new Option<int>("--workers") { Description = "Background data-loading workers", DefaultValueFactory = _ => 2 };
        var up = new Option<UpMode>("--up") { Description = "UNet up path: bilinear (1x1 conv + bilinear: what SSL4MIS, ABD, UniMatch, ACTION and BCP run) or transpose (transposed convolutions, no reference's default)", DefaultValueFactory = _ => UpMode.Bilinear };
        var noAug = new Option<bool>("--no-augment") { Description = "Disable rot90/flip/rotation augmentation" };
        var linear = new Option<bool>("--linear-resize") { Description = "Bilinear image resize (the reference uses nearest)" };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --output from its last.ckpt" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Only print the final summary" };
        var param = new Option<string[]>("--param", "-p") { Description = "Method hyper-parameter key=value (repeatable); see `semiseg methods`", AllowMultipleArgumentsPerToken = false };
        var config = new Option<string?>("--config") { Description = "Configuration file (JSON, e.g. a run's config.json, or YAML) with the same snake_case keys; options given here override it" };
        var noTensorBoard = new Option<bool>("--no-tensorboard") { Description = "Do not write TensorBoard event files (RUN/tensorboard/: losses, lr, validation metrics and pictures)" };
        var contiguous = new Option<bool>("--no-channels-last") { Description = "Keep NCHW (NCDHW for 3D networks) memory order; channels_last (channels_last_3d) is faster and numerically the same" };
        var initEncoder = new Option<string?>("--init-encoder") { Description = "Start the 2D network's encoder(s) from this checkpoint's network (e.g. best.ckpt of `semiseg pretrain`) or from a PyTorch state dict of the encoder (e.g. torchvision's ImageNet resnet34 for --network resnet34-unet; see README)" };
        var initFrom = new Option<string?>("--init-from") { Description = "Start every network of the method with the file's architecture from its weights: a SemiSeg checkpoint, or a PyTorch state dict (.pt/.pth/.safetensors) under the reference's parameter names (an SSL4MIS UNet or UA-MT VNet checkpoint, or `semiseg export` output)" };
        var network = new Option<string>("--network") { Description = "A 2D network trained on slices, for every 2D method: unet (default), resunet (ResNet blocks at the UNet's widths), resnet18-unet or resnet34-unet (TorchVision's ResNet encoder, patches multiple of 32; ImageNet weights via --init-encoder); or a 3D network trained on volume patches: vnet (the LA lineage's) or unet3d", DefaultValueFactory = _ => "unet" };
        network.AcceptOnlyFromAmong(Enum.GetValues<Net2DKind>().Select(Segmenter2D.Name).Concat(new[] { "vnet", "unet3d" }).ToArray());
        var patchDepth = new Option<int>("--patch-depth") { Description = "3D networks: patch depth in slices, multiple of 16 (the LA lineage's 112x112x80 is --patch-size 112 --patch-depth 80)", DefaultValueFactory = _ => 80 };
        var stride = MetricOptions.Stride();
        var stepSize = new Option<long>("--step-size") { Description = "--schedule step: lr·0.1^(it // N) (the LA lineage: 2500)", DefaultValueFactory = _ => 2500 };
        var device = MetricOptions.Device();
        var options = new List<Option> { output, iterations, patch, lr, schedule, optimizer, warmup, saveEvery, logEvery, seed, threads, device, workers, up, noAug, linear, resume, quiet, param, contiguous, noTensorBoard, config };
        if (!pretrain) options.AddRange(new Option[] { batch, labeledBs, method, valEvery, initEncoder, initFrom, network, patchDepth, stride, stepSize });
        foreach (var o in options) cmd.Add(o);
        cmd.SetAction(r =>
        {
            bool is3D = !pretrain && r.GetValue(network) is "vnet" or "unet3d";
            VolumeSplit? volumes = is3D ? data.LoadVolumes(r) : null;
            var manifest = is3D ? null : data.Load(r);
            if (pretrain) manifest = manifest!.WithoutValidation();
            int numClasses = volumes?.NumClasses ?? manifest!.NumClasses;
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
                Method = pretrain ? "meta-contrast" : V(method, b.Method), InitEncoder = pretrain ? null : V(initEncoder, b.InitEncoder), InitFrom = pretrain ? null : V(initFrom, b.InitFrom), OutputDir = r.GetValue(output)!, MaxIterations = V(iterations, b.MaxIterations),
                PatchHeight = V(patch, b.PatchHeight), PatchWidth = V(patch, b.PatchWidth), BatchSize = pretrain ? b.BatchSize : V(batch, b.BatchSize), LabeledBatchSize = pretrain ? b.LabeledBatchSize : V(labeledBs, b.LabeledBatchSize),
                BaseLr = V(lr, b.BaseLr), Schedule = TrainOptions.DefaultSchedule(r.GetResult(schedule) is { Implicit: false } || cfgPath is not null, pretrain ? "meta-contrast" : V(method, b.Method), V(schedule, b.Schedule)), Optimizer = V(optimizer, b.Optimizer), ValidateEvery = pretrain ? b.ValidateEvery : V(valEvery, b.ValidateEvery), SaveEvery = V(saveEvery, b.SaveEvery),
                LogEvery = V(logEvery, b.LogEvery), Seed = V(seed, b.Seed), Threads = V(threads, b.Threads), Device = V(device, b.Device), LoaderWorkers = V(workers, b.LoaderWorkers),
                Augment = Given(noAug) ? !r.GetValue(noAug) : b.Augment, LinearImageResize = V(linear, b.LinearImageResize), Resume = r.GetValue(resume),
                MethodParams = methodParams, ChannelsLast = Given(contiguous) ? !r.GetValue(contiguous) : b.ChannelsLast,
                TensorBoard = Given(noTensorBoard) ? !r.GetValue(noTensorBoard) : b.TensorBoard,
                Network = b.Network with
                {
                    NumClasses = numClasses, Up = V(up, b.Network.Up),
                    Kind = !is3D && r.GetResult(network) is { Implicit: false } && Segmenter2D.TryParse(r.GetValue(network)!, out var k2) ? k2 : b.Network.Kind,
                },
                // pre-training: the reference's specific/pretrain.yaml weight decay 0 unless a config file says otherwise
                WeightDecay = pretrain && cfgPath is null ? 0 : b.WeightDecay,
            };
            if (is3D)
            {
                var kind = r.GetValue(network) == "vnet" ? Net3DKind.Vnet : Net3DKind.Unet3d;
                int side = r.GetResult(patch) is { Implicit: false } ? r.GetValue(patch) : b.Network3D is not null ? b.PatchHeight : 112;
                o = o with
                {
                    Network3D = (b.Network3D ?? new Net3DConfig()) with { Kind = kind }, PatchDepth = V(patchDepth, b.PatchDepth == 0 ? 80 : b.PatchDepth),
                    PatchHeight = side, PatchWidth = side, Stride3D = MetricOptions.ParseTriple(r.GetValue(stride), "--stride") ?? b.Stride3D,
                    StepSize = V(stepSize, b.StepSize), ChannelsLast = false,
                };
            }
            o = o with { WarmupIterations = r.GetValue(warmup) ?? (cfgPath is null && pretrain ? o.MaxIterations / 8 : b.WarmupIterations) };
            var result = is3D ? RunTraining3D(o, volumes!, r.GetValue(quiet)) : RunTraining(o, manifest!, r.GetValue(quiet));
            if (pretrain) Console.WriteLine($"pre-trained encoder: {result.BestCheckpoint} (use with train --init-encoder); resumable state: {result.LastCheckpoint}");
            else
            {
                Console.WriteLine(double.IsFinite(result.BestDice)
                    ? $"best mean foreground Dice on validation: {result.BestDice:F4} at iteration {result.BestIteration}"
                    : "no validation volumes: best.ckpt holds the last weights");
                Console.WriteLine($"checkpoints: {result.BestCheckpoint} (best), {result.LastCheckpoint} (last, resumable)");
            }
            if (result.Interrupted)
            {
                Console.Error.WriteLine($"interrupted at iteration {result.Iterations}: continue with the same command plus --resume");
                return _terminated ? 143 : 130; // 128 + SIGTERM / SIGINT, as a shell reports a process those signals ended
            }
            return 0;
        });
        return cmd;
    }

    public static TrainingResult RunTraining(TrainOptions o, Data.DatasetManifest manifest, bool quiet) =>
        WithCancellation(o, quiet, (m, token) => new Trainer(o, manifest, m).Run(token));

    public static TrainingResult RunTraining3D(TrainOptions o, Data.VolumeSplit volumes, bool quiet) =>
        WithCancellation(o, quiet, (m, token) => new Trainer(o, volumes, m).Run(token));

    static bool _terminated;

    /// <summary>Ctrl+C (SIGINT) and SIGTERM (what Slurm, Kubernetes and `kill` send before they end a job) both finish
    /// the current iteration, write last.ckpt and return; a second Ctrl+C ends the process at once.</summary>
    static TrainingResult WithCancellation(TrainOptions o, bool quiet, Func<ITrainingMonitor, CancellationToken, TrainingResult> run)
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
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true; // not the default (immediate exit): stop at the end of the iteration
            if (cts.IsCancellationRequested) return;
            _terminated = true;
            cts.Cancel();
            Console.Error.WriteLine("SIGTERM: finishing the current iteration and saving last.ckpt (resume with --resume)...");
        });
        try
        {
            // curves.png beside the run, redrawn as it trains and once more at the end (Reporting.CurvesPng)
            var curves = new Reporting.CurvesPng(o.OutputDir);
            var result = ConsoleMonitor.Run(o.MaxIterations, quiet, m => run(ITrainingMonitor.Both(m, curves), cts.Token));
            curves.Draw();
            return result;
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }
}
