using SemiSeg.Data;

namespace SemiSeg.Inference;

/// <summary>
/// How a trained network labels a whole volume (MONAI's Inferer): slice by slice for 2D networks
/// (<see cref="SliceWiseInferer"/>), by sliding window for 3D ones (<see cref="SlidingWindowInferer"/>). Validation,
/// `evaluate` and `predict` all go through one, so none of them asks which kind of network it holds.
/// </summary>
public interface IInferer : IDisposable
{
    int NumClasses { get; }
    /// <summary>The label map of <paramref name="volume"/> ((D, H, W), D = 1 for a single image).</summary>
    byte[] Predict(Volume volume);
    /// <summary>One line for logs and reports.</summary>
    string Describe();
}
