using SemiSeg.Runtime;
using SemiSeg.Inference;
using System.Text.Json;
using System.Text.Json.Serialization;
using SemiSeg.Models;

namespace SemiSeg.Training;

/// <summary>poly (SSL4MIS), constant (BCP family on ACDC), cosine, step: ×0.1 every StepSize iterations (the LA lineage's
/// 0.01·0.1^(it // 2500)).</summary>
public enum LrSchedule { Poly, Constant, Cosine, Step }

/// <summary>SGD (momentum, L2 weight decay) is the field's default; RAdam is what the meta-label contrastive
/// pre-training of Peng et al. uses; Adam/AdamW for users' own protocols.</summary>
public enum OptimizerKind { Sgd, Adam, Adamw, Radam }

/// <summary>Everything a training run depends on. Saved as config.json beside every run.</summary>
public sealed record TrainOptions
{
    public string Method { get; init; } = "supervised";
    public string OutputDir { get; init; } = "runs/default";
    public int PatchHeight { get; init; } = 256;
    public int PatchWidth { get; init; } = 256;
    /// <summary>Total batch size (labeled + unlabeled), SSL4MIS: 24.</summary>
    public int BatchSize { get; init; } = 24;
    /// <summary>Labeled part of each batch, SSL4MIS: 12. Methods that use no unlabeled data use only this part.</summary>
    public int LabeledBatchSize { get; init; } = 12;
    public long MaxIterations { get; init; } = 30000;
    public double BaseLr { get; init; } = 0.01;
    public LrSchedule Schedule { get; init; } = LrSchedule.Poly;
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;
    /// <summary>Linear warm-up over the first N iterations: the scheduled rate times (it+1)/N.</summary>
    public long WarmupIterations { get; init; }
    /// <summary>SGD momentum (Adam-family optimizers use β1 0.9, β2 0.999).</summary>
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 1e-4;
    public int ValidateEvery { get; init; } = 200;
    public int SaveEvery { get; init; } = 200;
    public int LogEvery { get; init; } = 20;
    public int Seed { get; init; } = 1337;
    public int? Threads { get; init; }
    /// <summary>cpu, cuda, cuda:N or auto (CUDA when usable, else cpu): see <see cref="ComputeDevice.Resolve"/>. The
    /// device chosen is recorded in provenance.json.</summary>
    public string Device { get; init; } = "auto";
    public int LoaderWorkers { get; init; } = 2;
    public int Prefetch { get; init; } = 4;
    public bool Augment { get; init; } = true;
    /// <summary>Bilinear instead of nearest image resize (the reference uses nearest, order 0).</summary>
    public bool LinearImageResize { get; init; }
    public bool Resume { get; init; }
    /// <summary>Checkpoint whose network's encoder initialises the method's UNets (e.g. from `semiseg pretrain`).</summary>
    public string? InitEncoder { get; init; }
    /// <summary>Checkpoint or PyTorch state dict (reference names) whose weights start every network of the method
    /// with its architecture (see <see cref="InitialWeights"/>).</summary>
    public string? InitFrom { get; init; }
    /// <summary>Method hyper-parameters (key=value) over the method's defaults.</summary>
    [JsonConverter(typeof(ScalarMapConverter))]
    public Dictionary<string, string> MethodParams { get; init; } = new();
    /// <summary>Run the network in channels_last (NHWC; NDHWC for 3D networks) memory order: same values, faster oneDNN kernels.</summary>
    public bool ChannelsLast { get; init; } = true;
    /// <summary>Write TensorBoard event files in RUN/tensorboard/ (losses, each term, lr, validation metrics and
    /// pictures), as SSL4MIS does; see <see cref="TensorBoardLog"/>.</summary>
    public bool TensorBoard { get; init; } = true;
    /// <summary>2D: the UNet. 3D: the class count and input channels (and, for M&amp;N, the slice-wise 2D UNet).</summary>
    public UNetConfig Network { get; init; } = new();
    /// <summary>The 3D network; null trains 2D slices. With it the run trains on (PatchDepth, PatchHeight, PatchWidth)
    /// volume patches and validates with a sliding window.</summary>
    public Net3DConfig? Network3D { get; init; }
    /// <summary>3D: patch depth (slices), a multiple of 16 like the in-plane sides.</summary>
    public int PatchDepth { get; init; }
    /// <summary>3D: sliding-window strides (d, h, w) for validation; null = half the patch.</summary>
    public int[]? Stride3D { get; init; }
    /// <summary>The step schedule's period: lr·0.1^(it // StepSize).</summary>
    public long StepSize { get; init; } = 2500;

    public bool Is3D => Network3D is not null;

    public (int d, int h, int w) Patch3D => (PatchDepth, PatchHeight, PatchWidth);

    public (int d, int h, int w) Stride => Stride3D is { Length: 3 } s ? (s[0], s[1], s[2]) : Inference.SlidingWindowInferer.HalfPatch(Patch3D);

    /// <summary>The schedule a run gets: <paramref name="current"/> when one was given (command line or config file),
    /// else the method's reference schedule: constant for bcp (ACDC_BCP_train.py never decays its rate), otherwise
    /// <paramref name="current"/> (the command's default).</summary>
    public static LrSchedule DefaultSchedule(bool given, string? method, LrSchedule current) =>
        !given && string.Equals(method, "bcp", StringComparison.OrdinalIgnoreCase) ? LrSchedule.Constant : current;

    /// <summary>The rate of <paramref name="iteration"/>. With <paramref name="restartAt"/> in (0, MaxIterations) the
    /// schedule runs twice: over [0, restartAt) and again from the base rate over [restartAt, MaxIterations) (a method
    /// whose stages each have their own schedule, <see cref="Methods.IRestartsSchedule"/>); the warm-up only at the start.</summary>
    public double LearningRateAt(long iteration, long restartAt = 0)
    {
        long it = iteration, span = MaxIterations;
        if (restartAt > 0 && restartAt < MaxIterations)
        {
            if (iteration < restartAt) span = restartAt;
            else { it = iteration - restartAt; span = MaxIterations - restartAt; }
        }
        double t = (double)it / span;
        double lr = Schedule switch
        {
            LrSchedule.Poly => BaseLr * Math.Pow(1.0 - t, 0.9),
            LrSchedule.Cosine => BaseLr * 0.5 * (1 + Math.Cos(Math.PI * t)),
            LrSchedule.Step => BaseLr * Math.Pow(0.1, it / Math.Max(1, StepSize)),
            _ => BaseLr,
        };
        return iteration < WarmupIterations ? lr * (iteration + 1) / WarmupIterations : lr;
    }

    /// <summary>The optimizer this configuration names, over <paramref name="parameters"/>.</summary>
    public TorchSharp.Modules.OptimizerHelper CreateOptimizer(IEnumerable<TorchSharp.Modules.Parameter> parameters) => Optimizer switch
    {
        OptimizerKind.Sgd => TorchSharp.torch.optim.SGD(parameters, BaseLr, momentum: Momentum, weight_decay: WeightDecay),
        OptimizerKind.Adam => TorchSharp.torch.optim.Adam(parameters, BaseLr, weight_decay: WeightDecay),
        OptimizerKind.Adamw => TorchSharp.torch.optim.AdamW(parameters, BaseLr, weight_decay: WeightDecay),
        OptimizerKind.Radam => TorchSharp.torch.optim.RAdam(parameters, BaseLr, weight_decay: WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(Optimizer)),
    };


    /// <summary>
    /// Reads a configuration file: JSON (a run's config.json can be given back as is) or YAML, with the same
    /// snake_case keys (method_params: {consistency: 0.1}, network: {up: transpose}). Unknown keys are an error.
    /// </summary>
    public static TrainOptions FromFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file '{path}' does not exist", path);
        string text = File.ReadAllText(path);
        string json;
        try
        {
            if (path.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            {
                var yaml = new YamlDotNet.Serialization.DeserializerBuilder().WithAttemptingUnquotedStringTypeDeserialization().Build().Deserialize<object>(text);
                json = JsonSerializer.Serialize(ToJsonFriendly(yaml));
            }
            else json = text;
            var strict = new JsonSerializerOptions(Runtime.JsonFormat.Options) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };
            return JsonSerializer.Deserialize<TrainOptions>(json, strict) ?? throw new InvalidDataException("empty document");
        }
        catch (Exception e) when (e is JsonException or YamlDotNet.Core.YamlException or InvalidDataException or NotSupportedException)
        {
            throw new InvalidDataException($"config file '{path}': {e.Message}", e);
        }
    }

    // YamlDotNet gives Dictionary<object, object>; System.Text.Json needs string keys.
    static object? ToJsonFriendly(object? node) => node switch
    {
        IDictionary<object, object> d => d.ToDictionary(kv => kv.Key.ToString()!, kv => ToJsonFriendly(kv.Value)),
        IList<object> l => l.Select(ToJsonFriendly).ToList(),
        _ => node,
    };

    public void Validate()
    {
        if (PatchHeight < 16 || PatchWidth < 16 || PatchHeight % 16 != 0 || PatchWidth % 16 != 0)
            throw new ArgumentException($"patch size {PatchHeight}x{PatchWidth}: both sides must be multiples of 16 (four 2x poolings), at least 16");
        if (Is3D && (PatchDepth < 16 || PatchDepth % 16 != 0))
            throw new ArgumentException($"patch depth {PatchDepth}: 3D networks need a multiple of 16 (four 2x downsamplings), at least 16");
        if (Stride3D is { } st && (st.Length != 3 || st.Any(v => v <= 0))) throw new ArgumentException("the sliding-window stride needs three positive numbers d,h,w");
        if (LabeledBatchSize <= 0) throw new ArgumentException($"labeled batch size must be positive (got {LabeledBatchSize})");
        if (BatchSize < LabeledBatchSize) throw new ArgumentException($"batch size {BatchSize} is smaller than the labeled batch size {LabeledBatchSize}");
        if (MaxIterations <= 0) throw new ArgumentException($"iterations must be positive (got {MaxIterations})");
        if (!(BaseLr > 0) || !double.IsFinite(BaseLr)) throw new ArgumentException($"learning rate must be a positive finite number (got {BaseLr})");
        if (!(Momentum >= 0) || !double.IsFinite(Momentum)) throw new ArgumentException($"momentum must be a finite number >= 0 (got {Momentum})");
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay)) throw new ArgumentException($"weight decay must be a finite number >= 0 (got {WeightDecay})");
        if (WarmupIterations < 0) throw new ArgumentException($"warm-up must be zero or more iterations (got {WarmupIterations})");
        if (Network.NumClasses < 2) throw new ArgumentException($"at least 2 classes are needed (got {Network.NumClasses})");
        foreach (var (name, every) in new[] { ("validation interval (--val-every / validate_every)", ValidateEvery), ("checkpoint interval (--save-every / save_every)", SaveEvery), ("log interval (--log-every / log_every)", LogEvery) })
            if (every <= 0) throw new ArgumentException($"the {name} must be at least 1 iteration (got {every})");
        if (!Is3D && Inference.CheckpointFile.CheckUNet(Network) is string network) throw new ArgumentException($"network: {network}");
        if (!Is3D && Models.Segmenter2D.SizeMultiple(Network.Kind) is int k && (PatchHeight % k != 0 || PatchWidth % k != 0))
            throw new ArgumentException($"patch size {PatchHeight}x{PatchWidth}: {Models.Segmenter2D.Name(Network.Kind)} downsamples {k}x, so both sides must be multiples of {k}");
    }
}

/// <summary>Reads a JSON object of scalars (numbers, booleans, strings) as strings, so hand-written configs may
/// write <c>consistency: 0.1</c>; writes strings.</summary>
public sealed class ScalarMapConverter : JsonConverter<Dictionary<string, string>>
{
    public override Dictionary<string, string> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("method_params must be a mapping of names to values");
        var d = new Dictionary<string, string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = reader.GetString()!;
            reader.Read();
            d[key] = reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString()!,
                JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
                JsonTokenType.True => "true",
                JsonTokenType.False => "false",
                _ => throw new JsonException($"method_params.{key}: expected a number, boolean or string"),
            };
        }
        return d;
    }

    public override void Write(Utf8JsonWriter writer, Dictionary<string, string> value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (k, v) in value) writer.WriteString(k, v);
        writer.WriteEndObject();
    }
}
