using SemiSeg.Data;
using SemiSeg.Inference;
using SemiSeg.Methods;
using SemiSeg.Methods.Volume;
using SemiSeg.Models;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>One training batch as tensors' data: images (labeled first), the labeled images' labels, shapes.</summary>
public sealed record TrainingBatch(float[] Images, long[] ImageShape, long[] Labels, long[] LabelShape, int LabeledCount, int Count,
    IReadOnlyList<MetaLabels>? Meta = null);

/// <summary>The background loader of a run's batches (pure functions of the batch index, see the samplers).</summary>
public interface IBatchSource : IDisposable
{
    TrainingBatch Next();
    /// <summary>Seconds the training loop waited for batches so far.</summary>
    double WaitSeconds { get; }
    /// <summary>A validation case, read once (the loader's cache).</summary>
    Volume Get(CaseRef c);
}

/// <summary>
/// What differs between training on 2D slices and on 3D patches, given to the one <see cref="Trainer"/> loop: the
/// method (from <see cref="MethodRegistry"/>'s 2D or 3D variant), the batches, the validator (slice-wise or
/// sliding-window <see cref="IInferer"/>) and the checkpoint's description. Chosen by the run's network dimension:
/// <see cref="For"/>.
/// </summary>
public abstract class TrainingData
{
    readonly Func<string> _summary;

    TrainingData(string name, int numClasses, int labeled, int unlabeled, IReadOnlyList<CaseRef> val, IReadOnlyList<string> classNames, bool volumetric, Func<string> summary)
    {
        Name = name; NumClasses = numClasses; LabeledCount = labeled; UnlabeledCount = unlabeled; Val = val; ClassNames = classNames; Volumetric = volumetric; _summary = summary;
    }

    public string Name { get; }
    public int NumClasses { get; }
    /// <summary>Labeled training items: slices for 2D, volumes for 3D.</summary>
    public int LabeledCount { get; }
    public int UnlabeledCount { get; }
    public IReadOnlyList<CaseRef> Val { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public bool Volumetric { get; }
    public string Summary() => _summary();
    /// <summary>The data as volumes, for the checks that run before training (<see cref="DataCheck"/>).</summary>
    internal abstract VolumeSplit Split { get; }
    /// <summary>The run's data lists fingerprinted for provenance.json (slices for 2D, volumes for 3D).</summary>
    internal abstract System.Text.Json.Nodes.JsonObject DescribeProvenance();

    /// <summary>Slices of a 2D dataset for a 2D network, volumes for a 3D one.</summary>
    public static TrainingData For(TrainOptions o, DatasetManifest data) => o.Is3D ? new Volumes(VolumeSplit.FromManifest(data)) : new Slices(data);
    public static TrainingData For(VolumeSplit data) => new Volumes(data);

    /// <summary>The method, checked against the data before anything is drawn.</summary>
    internal abstract ITrainableMethod CreateMethod(TrainOptions o, MethodSettings settings, out string name);
    /// <summary>Checks that the data can fill the method's batches (and lets the method adapt to the data); returns
    /// warnings for the log.</summary>
    internal abstract IReadOnlyList<string> CheckComposition(TrainOptions o, ITrainableMethod method, string name);
    internal abstract IBatchSource OpenBatches(TrainOptions o, ITrainableMethod method, long start);
    internal abstract IInferer Validator(TrainOptions o, ITrainableMethod method);
    internal abstract CheckpointMeta Meta(TrainOptions o, string method);
    internal abstract string DescribeBatches(TrainOptions o, ITrainableMethod method, long start);
    internal virtual string DescribeMethod(TrainOptions o, string name) => name;
    internal virtual string DescribeBatch(TrainingBatch b) => "";

    /// <summary>2D slices (and meta-labels) from a <see cref="DatasetManifest"/>; validation slice by slice.</summary>
    public sealed class Slices : TrainingData
    {
        readonly DatasetManifest _d;
        readonly CaseCache _cache;
        public Slices(DatasetManifest data) : base(data.Name, data.NumClasses, data.Labeled.Count, data.Unlabeled.Count, data.Val, data.ClassNames, false, data.Summary)
        {
            _d = data; _cache = new CaseCache(data.NumClasses);
        }
        internal override VolumeSplit Split => VolumeSplit.FromManifest(_d);
        internal override System.Text.Json.Nodes.JsonObject DescribeProvenance() => Provenance.Describe(_d);

        bool _usesUnlabeled;

        internal override ITrainableMethod CreateMethod(TrainOptions o, MethodSettings settings, out string name)
        {
            var entry = MethodRegistry.Get(o.Method);
            name = entry.Name;
            _usesUnlabeled = entry.UsesUnlabeled;
            return entry.Create(o.Network, settings);
        }

        int UnlabeledBatch(TrainOptions o) => _usesUnlabeled ? o.BatchSize - o.LabeledBatchSize : 0;

        /// <summary>Every training slice, labeled ones first.</summary>
        IReadOnlyList<SliceRef> TrainingSlices => _d.Labeled.Concat(_d.Unlabeled).ToList();

        static ScanGroupedBatches? ScanGrouped(ITrainableMethod method) => (method as IMetaLabelBatches)?.ScanGrouped;

        // meta-label methods check their kinds against all training slices (a kind with one value is switched off, by
        // name in the returned warnings) before the optimizer sees their parameters, and may ask for scan-grouped
        // batches over all training slices (Peng et al.'s pre-training), which need no unlabeled data
        internal override IReadOnlyList<string> CheckComposition(TrainOptions o, ITrainableMethod method, string name)
        {
            var warnings = method is IMetaLabelBatches mlb ? mlb.FitToData(TrainingSlices.Select(s => s.Meta).ToList()) : Array.Empty<string>();
            if (ScanGrouped(method) is null && UnlabeledBatch(o) > 0 && _d.Unlabeled.Count == 0)
                throw new ArgumentException($"method '{name}' needs unlabeled data, but {_d.Name} has none");
            return warnings;
        }

        /// <summary>The sampler and the lists its indices point into, with the log's description of the batches.</summary>
        (IBatchSampler sampler, IReadOnlyList<SliceRef> labeled, IReadOnlyList<SliceRef> unlabeled, string text) Batches(TrainOptions o, ITrainableMethod method)
        {
            if (ScanGrouped(method) is { } g)
            {
                // every training slice, labeled or not, as an unlabeled item: the labels are not used
                var all = TrainingSlices;
                var grouped = new ScanGroupedBatchSampler(all.Select(s => s.Meta).ToList(), g.ScansPerBatch, g.Partitions, o.Seed);
                return (grouped, Array.Empty<SliceRef>(), all,
                    $"batch: {grouped.ScansPerBatch} of {grouped.ScanCount} scans x one slice per partition ({grouped.Partitions}), up to {grouped.MaxBatchSize} of all {all.Count} training slices (labels unused)");
            }
            int u = UnlabeledBatch(o);
            return (new TwoStreamBatchSampler(_d.Labeled.Count, _d.Unlabeled.Count, o.LabeledBatchSize, u, o.Seed), _d.Labeled, _d.Unlabeled,
                $"batch {o.BatchSize} ({o.LabeledBatchSize} labeled{(u > 0 ? $" + {u} unlabeled" : "")})");
        }

        internal override IBatchSource OpenBatches(TrainOptions o, ITrainableMethod method, long start)
        {
            var (sampler, labeled, unlabeled, _) = Batches(o, method);
            var aug = new SliceAugmenter(o.PatchHeight, o.PatchWidth, o.Augment, o.LinearImageResize);
            return new SliceBatches(new BatchLoader(labeled, unlabeled, sampler, aug, _cache, o.Seed, start, o.Prefetch, o.LoaderWorkers), o.Network.InChannels, _cache);
        }

        internal override IInferer Validator(TrainOptions o, ITrainableMethod method) =>
            // the module the method predicts with: its network, or C3S3's ensemble of both networks
            new SliceWiseInferer((nn.Module<Tensor, Tensor>)method.InferenceModule, ((ISegmentationMethod)method).InferenceNetwork.Config.NumClasses,
                o.PatchHeight, o.PatchWidth, o.LinearImageResize);

        internal override CheckpointMeta Meta(TrainOptions o, string method) => new()
        {
            Method = method, Network = o.Network, PatchHeight = o.PatchHeight, PatchWidth = o.PatchWidth, LinearImageResize = o.LinearImageResize, ClassNames = _d.ClassNames,
        };

        internal override string DescribeBatches(TrainOptions o, ITrainableMethod method, long start)
        {
            return $"{Batches(o, method).text}, patch {o.PatchHeight}x{o.PatchWidth}, " +
                   $"{o.MaxIterations} iterations, {o.Optimizer} lr {o.BaseLr} ({o.Schedule.ToString().ToLowerInvariant()}{(o.WarmupIterations > 0 ? $", warm-up {o.WarmupIterations}" : "")}){(o.Optimizer == OptimizerKind.Sgd ? $", momentum {o.Momentum}" : "")}, wd {o.WeightDecay}, seed {o.Seed}";
        }

        internal override string DescribeMethod(TrainOptions o, string name) =>
            o.Network.Kind == Net2DKind.Unet ? name : $"{name} ({Segmenter2D.Name(o.Network.Kind)})";


        sealed class SliceBatches(BatchLoader loader, int channels, CaseCache cache) : IBatchSource
        {
            public TrainingBatch Next()
            {
                var b = loader.Next();
                return new TrainingBatch(b.Images, new long[] { b.Count, channels, b.Height, b.Width }, b.Labels, new long[] { b.LabeledCount, b.Height, b.Width },
                    b.LabeledCount, b.Count, b.Items.Select(i => i.Meta).ToArray());
            }
            public double WaitSeconds => loader.WaitSeconds;
            public Volume Get(CaseRef c) => cache.Get(c);
            public void Dispose() => loader.Dispose();
        }
    }

    /// <summary>3D patches from a <see cref="VolumeSplit"/> (LA, ACDC volumes, own data); validation by sliding window.</summary>
    public sealed class Volumes : TrainingData
    {
        readonly VolumeSplit _d;
        public Volumes(VolumeSplit data) : base(data.Name, data.NumClasses, data.Labeled.Count, data.Unlabeled.Count, data.Val, data.ClassNames, true, data.Summary) => _d = data;
        internal override VolumeSplit Split => _d;
        internal override System.Text.Json.Nodes.JsonObject DescribeProvenance() => Provenance.Describe(_d);

        static (int labeled, int unlabeled) Composition(TrainOptions o, ITrainableMethod method, long b) =>
            ((IVolumeMethod)method).Composition(b, o.MaxIterations, o.BatchSize, o.LabeledBatchSize);

        internal override ITrainableMethod CreateMethod(TrainOptions o, MethodSettings settings, out string name)
        {
            var entry = MethodRegistry.GetVolume(o.Method);
            name = entry.Name;
            return entry.Create(new VolumeMethodContext(o.Network3D!, o.Network, settings));
        }

        // the composition of every batch is known up front; check the data can fill it before the first step
        internal override IReadOnlyList<string> CheckComposition(TrainOptions o, ITrainableMethod method, string name)
        {
            if (_d.Unlabeled.Count == 0 && Composition(o, method, o.MaxIterations - 1).unlabeled > 0)
                throw new ArgumentException($"method '{name}' needs unlabeled volumes, but {_d.Name} has none");
            return Array.Empty<string>();
        }

        internal override IBatchSource OpenBatches(TrainOptions o, ITrainableMethod method, long start)
        {
            var sampler = new VolumeBatchSampler(_d.Labeled.Count, _d.Unlabeled.Count, o.BatchSize, b => Composition(o, method, b), o.Seed);
            return new VolumeBatches(new VolumeBatchLoader(_d, sampler, o.Patch3D, o.Augment, o.Seed, start, prefetch: 2, workers: Math.Max(1, o.LoaderWorkers)), o.Network.InChannels);
        }

        internal override IInferer Validator(TrainOptions o, ITrainableMethod method) =>
            new SlidingWindowInferer(((IVolumeMethod)method).InferenceNetwork, _d.NumClasses, o.Patch3D, o.Stride);

        internal override CheckpointMeta Meta(TrainOptions o, string method) => new()
        {
            Method = method, Network = o.Network, Network3D = o.Network3D, PatchDepth = o.PatchDepth, PatchHeight = o.PatchHeight, PatchWidth = o.PatchWidth,
            ClassNames = _d.ClassNames.ToArray(),
        };

        internal override string DescribeMethod(TrainOptions o, string name) => $"{name} (3D, {o.Network3D!.Describe()})";

        internal override string DescribeBatches(TrainOptions o, ITrainableMethod method, long start)
        {
            var (d, h, w) = o.Patch3D;
            var c = Composition(o, method, start);
            return $"batch {o.BatchSize} (composition at start {c.labeled}+{c.unlabeled}), patch {d}x{h}x{w}, {o.MaxIterations} iterations, " +
                   $"{o.Optimizer} lr {o.BaseLr} ({o.Schedule.ToString().ToLowerInvariant()}), wd {o.WeightDecay}, seed {o.Seed}";
        }

        internal override string DescribeBatch(TrainingBatch b) => $" batch {b.LabeledCount}+{b.Count - b.LabeledCount}";

        sealed class VolumeBatches(VolumeBatchLoader loader, int channels) : IBatchSource
        {
            public TrainingBatch Next()
            {
                var b = loader.Next();
                var (d, h, w) = b.Patch;
                return new TrainingBatch(b.Images, new long[] { b.Count, channels, d, h, w }, b.Labels, new long[] { b.LabeledCount, d, h, w }, b.LabeledCount, b.Count);
            }
            public double WaitSeconds => loader.WaitSeconds;
            public Volume Get(CaseRef c) => loader.Get(c);
            public void Dispose() => loader.Dispose();
        }
    }
}
