using SemiSeg.Inference;
using SemiSeg.Methods;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>
/// <c>train --init-from FILE</c>: every network of the method with the file's architecture (the student, its EMA
/// teacher, both networks of a co-training pair) starts from the file's weights, BatchNorm statistics included. The
/// file is a SemiSeg checkpoint or a PyTorch state dict under the reference's names (an SSL4MIS UNet or UA-MT VNet
/// checkpoint, see <see cref="ForeignCheckpoint"/>). Networks of another kind (projection heads, a ResUNet partner)
/// keep their own initialisation. A resumed run's checkpoint takes precedence (it is restored afterwards).
/// </summary>
public static class InitialWeights
{
    /// <summary>Copies the weights; returns the line for the training log. Throws when no network fits.</summary>
    public static string Apply(string path, ITrainableMethod method)
    {
        var (source, meta) = CheckpointFile.LoadAnyNetwork(path);
        using var _ = source;
        var src = source.state_dict();
        int copied = 0;
        var reasons = new List<string>();
        using (no_grad())
            foreach (var m in method.StatefulModules)
            {
                if (m.GetType() != source.GetType()) continue;
                var dst = m.state_dict();
                var problem = dst.Keys.Except(src.Keys).Select(k => $"{k} missing").Concat(src.Keys.Except(dst.Keys).Select(k => $"{k} unexpected"))
                    .Concat(dst.Where(kv => src.TryGetValue(kv.Key, out var s) && !s.shape.SequenceEqual(kv.Value.shape))
                               .Select(kv => $"{kv.Key} [{string.Join(",", src[kv.Key].shape)}] where the run's network has [{string.Join(",", kv.Value.shape)}]"))
                    .FirstOrDefault();
                if (problem != null) { reasons.Add(problem); continue; }
                foreach (var (name, t) in dst) t.copy_(src[name]);
                copied++;
            }
        string what = meta.Method == ForeignCheckpoint.MethodName ? "PyTorch state dict" : $"checkpoint of method {meta.Method}, iteration {meta.Iteration}";
        if (copied == 0)
            throw new InvalidDataException($"--init-from '{path}' ({what}, {source.GetName()}, {meta.Network.NumClasses} classes) fits none of method '{method.Name}''s networks"
                + (reasons.Count > 0 ? $": {reasons[0]}" : $" (it holds a {source.GetName()}, the method trains other networks)"));
        return $"initialised {copied} network(s) of method {method.Name} from {path} ({what}, {source.GetName()})";
    }
}
