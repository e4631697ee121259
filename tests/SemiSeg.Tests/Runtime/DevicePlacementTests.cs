using SemiSeg.Data;
using SemiSeg.Methods;
using SemiSeg.Methods.Volume;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Runtime;

/// <summary>
/// Every method's training step keeps its work on the batch's device, checked without a GPU.
///
/// libtorch's <c>meta</c> device cannot run the steps themselves from .NET: its convolution, index_select, flip and
/// reflection-pad meta kernels live in PyTorch's Python layer (torch/_meta_registrations.py), not in libtorch, so a
/// network on meta throws before any method code runs. The test turns the check around: networks and batches stay on
/// the CPU ("the device") while torch's default device is meta ("the host"). A tensor a step creates without naming a
/// device (a mask, a box, an index list, a random draw, an array uploaded from .NET) then lands on meta and the first
/// op that mixes it with the batch throws "Expected all tensors to be on the same device, … meta and cpu"; reading a
/// logged term that was created without a device throws "Cannot copy out of meta tensor". On a CUDA run those tensors
/// would have been host tensors mixed into device work. The real step runs: the method's losses,
/// <see cref="Trainer.Step"/> (backward, the finite-step guard, the optimizer, EMA updates), twice, in the first stage
/// and after every method's stage switch, then the log's read of the terms. Separately, right after construction,
/// every tensor the method holds outside its modules' parameters and buffers is listed: such state would stay on the
/// host when the trainer moves the modules.
///
/// Not checked here: tensors a step explicitly copies to the host (`.cpu()` for connected components, ellipse fits,
/// patch scores) are host work by design and are checked only in that what comes back is created on the device;
/// 0-dim host tensors, which CUDA would accept as scalars, are reported too (and put on the device).
/// </summary>
public class DevicePlacementTests(ITestOutputHelper output)
{
    static readonly Device Host = new(DeviceType.META);

    public static IEnumerable<object[]> Cases() =>
        MethodRegistry.Slices.Select(e => new object[] { e.Name, false })
            .Concat(MethodRegistry.Volumes.Select(v => new object[] { v.Name, true }));

    /// <summary>Settings that make the second step reach every branch with device work: methods with a second stage
    /// start it at iteration 1, Mean Teacher's consistency starts at 1, and confidence filters let every pixel or image
    /// through (at random initialisation nothing is confident, and a filtered-out branch would go unchecked).</summary>
    static MethodSettings Settings(string name, bool volume)
    {
        var kv = new Dictionary<string, string>();
        if (name is "bcp" or "action" or "m3hl") kv["pretrain_iterations"] = "1";
        if (name == "mean-teacher" && !volume) kv["consistency_start"] = "1";
        if (name is "unimatch" or "transmedseg") kv["conf_thresh"] = "0";
        if (name == "ersr") kv["min_score"] = "0";
        if (name == "action") { kv["strong_threshold"] = "0.5"; kv["weak_threshold"] = "0"; kv["num_queries"] = "16"; kv["num_negatives"] = "32"; }
        return new MethodSettings(kv);
    }

    static ITrainableMethod Create(string name, bool volume) => volume
        ? MethodRegistry.GetVolume(name).Create(new VolumeMethodContext(new Net3DConfig { Filters = 4 }, new UNetConfig { NumClasses = 2 }, Settings(name, true)))
        : MethodRegistry.Get(name).Create(new UNetConfig { NumClasses = 3 }, Settings(name, false));

    [Theory]
    [MemberData(nameof(Cases))]
    public void TrainingStepCreatesNoTensorOffTheBatchDevice(string name, bool volume)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(11);
        using var method = Create(name, volume);
        var outside = TensorsOutsideModules(method);
        Assert.True(outside.Count == 0, $"{name} ({(volume ? "3D" : "2D")}) holds tensors outside its modules, which do not move to the device: {string.Join(", ", outside)}");
        using var optimizer = new TrainOptions().CreateOptimizer(method.TrainableModules.SelectMany(m => m.parameters()).ToList());
        method.Train(true);
        // 4 images (2 labeled): 32x32 slices (the UNet's bottleneck 2x2) or 16^3 patches (the VNet's 1^3 with 4 filters)
        long[] imageShape = volume ? new long[] { 4, 1, 16, 16, 16 } : new long[] { 4, 1, 32, 32 };
        var images = rand(imageShape);
        var labels = zeros(imageShape.Skip(2).Prepend(2L).ToArray(), ScalarType.Int64);
        // a centred square/cube of class 1 so every method sees foreground
        var centre = imageShape.Skip(2).Select(s => TensorIndex.Slice(s / 4, 3 * s / 4)).Prepend(TensorIndex.Colon).ToArray();
        labels[centre] = tensor(1L);
        var meta = Enumerable.Range(0, 4).Select(i => new MetaLabels($"p{i % 2}", i < 2 ? "ED" : "ES", i, 4)).ToArray();
        var checkedIterations = new List<long>();
        var termsAt = new Dictionary<long, string>();
        set_default_device(Host);
        try
        {
            foreach (long it in new long[] { 0, 1 })
            {
                using var stepScope = NewDisposeScope();
                var ctx = new TrainingContext(it, 4, 0.01) { Meta = volume ? null : meta };
                MethodStep step;
                try { step = Trainer.Step(method, optimizer, images, labels, 2, ctx); }
                catch (System.Runtime.InteropServices.ExternalException e) when (e.Message.Contains("meta", StringComparison.OrdinalIgnoreCase))
                {
                    // "same device ... meta and cpu", "Cannot copy out of meta tensor", or a meta kernel libtorch lacks:
                    // in each case a tensor created without a device reached the step
                    throw new Xunit.Sdk.XunitException($"{name} ({(volume ? "3D" : "2D")}) iteration {it}: a tensor created without a device was mixed into the step (it would be a host tensor on a GPU): {e.Message.Split('\n')[0]}\n{e.StackTrace}");
                }
                Assert.Equal(DeviceType.CPU, step.Loss.device_type);
                Assert.True(float.IsFinite(step.Loss.item<float>()));
                // the log's read, as the trainer does it at log-every
                var terms = step.Terms.ToDictionary(t => t.Key, t => t.Value.item<float>());
                checkedIterations.Add(it);
                termsAt[it] = string.Join(" ", terms.Select(t => $"{t.Key} {t.Value:G3}"));
            }
        }
        finally { set_default_device(CPU); }
        output.WriteLine($"device placement checked: {name} {(volume ? "3D" : "2D")} iterations {string.Join(",", checkedIterations)}; terms at 1: {termsAt.GetValueOrDefault(1)}");
    }

    /// <summary>Tensors the method holds (<see cref="HeldTensors"/>) that are not a parameter or buffer of one of its
    /// stateful modules.</summary>
    static List<string> TensorsOutsideModules(ITrainableMethod method)
    {
        var owned = new HashSet<IntPtr>(method.StatefulModules.SelectMany(m => m.parameters().Cast<Tensor>().Concat(m.buffers())).Select(t => t.Handle));
        return HeldTensors.Of(method).Where(h => !owned.Contains(h.tensor.Handle)).Select(h => $"{h.path} [{string.Join(",", h.tensor.shape)}]").ToList();
    }
}
