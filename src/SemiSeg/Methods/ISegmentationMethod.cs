using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods;

/// <summary>Where training stands when a method computes its losses, and the batch's meta-labels (slice position,
/// patient, phase) in batch order when the trainer has them.</summary>
public sealed record TrainingContext(long Iteration, long MaxIterations, double LearningRate)
{
    public IReadOnlyList<SemiSeg.Data.MetaLabels>? Meta { get; init; }
}

/// <summary>A method's loss for one batch and the scalars it wants logged.</summary>
public sealed class MethodStep
{
    public MethodStep(Tensor loss, IReadOnlyDictionary<string, Tensor>? terms = null) { Loss = loss; Terms = terms ?? new Dictionary<string, Tensor>(); }
    public Tensor Loss { get; }
    /// <summary>Loss terms (scalar tensors) for the log; read lazily, only when a line is written.</summary>
    public IReadOnlyDictionary<string, Tensor> Terms { get; }
}

/// <summary>
/// What the trainers need of any method, 2D or 3D: given a batch (labeled images first, then unlabeled) it computes its
/// losses. It may own several networks, an EMA teacher or a memory; trainers, data, evaluation and CLI stay
/// method-agnostic. <see cref="ISegmentationMethod"/> (2D slices) and <see cref="IVolumeMethod"/> (3D patches) refine it.
/// </summary>
public interface ITrainableMethod : IDisposable
{
    string Name { get; }
    /// <summary>The network used for validation, checkpoints' best weights and prediction.</summary>
    nn.Module InferenceModule { get; }
    /// <summary>Modules whose parameters the optimizer trains.</summary>
    IReadOnlyList<nn.Module> TrainableModules { get; }
    /// <summary>Every module whose state a resumable checkpoint must hold (trainable ones, EMA teachers, ...).</summary>
    IReadOnlyList<nn.Module> StatefulModules { get; }
    /// <summary><paramref name="images"/> (B, C, H, W) or (B, C, D, H, W); <paramref name="labels"/> (B_l, [D,] H, W)
    /// for the first B_l images.</summary>
    MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context);
    /// <summary>Called after each optimizer step (EMA updates and the like).</summary>
    void AfterOptimizerStep(TrainingContext context) { }
    void Train(bool on) { foreach (var m in StatefulModules) m.train(on); }
}

/// <summary>A method whose reference restarts the learning-rate schedule when its second stage begins (M&amp;N's cosine
/// restart at the switch to unlabeled data): the trainer runs the schedule over [0, restart) and again over
/// [restart, max).</summary>
public interface IRestartsSchedule
{
    /// <summary>The first iteration of the restarted schedule; 0 or less: no restart.</summary>
    long ScheduleRestart(long maxIterations);
}

/// <summary>A method whose second stage starts from its first stage's best (validation-selected) checkpoint, optimizer
/// state included, as BCP's self-training loads the pre-training's best model and optimizer. The 2D trainer keeps that
/// checkpoint (stage1-best.ckpt) and restores it just before iteration <see cref="StageTwoStart"/>.</summary>
public interface IStartsStageTwoFromBest
{
    /// <summary>The first iteration of stage 2; 0 or less: no restore.</summary>
    long StageTwoStart { get; }
}

/// <summary>A method trained on 2D slices; its inference network is any 2D network (<see cref="Segmenter2D"/>, chosen by
/// the configuration's <see cref="UNetConfig.Kind"/>, `--network`).</summary>
public interface ISegmentationMethod : ITrainableMethod
{
    /// <summary>The network used for validation, checkpoints' best weights and prediction.</summary>
    Segmenter2D InferenceNetwork { get; }
    nn.Module ITrainableMethod.InferenceModule => InferenceNetwork;
}
