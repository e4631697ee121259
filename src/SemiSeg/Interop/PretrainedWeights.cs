using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Interop;

/// <summary>
/// Encoder weights saved from PyTorch (<c>torch.save(model.state_dict(), FILE)</c>, the zip format of PyTorch ≥ 1.6, or
/// safetensors), read by <see cref="StateDictFile"/> (TorchSharp.PyBridge): e.g. torchvision's ImageNet ResNet-34, which
/// <see cref="ResNetUNet2D"/>'s encoder takes under its own names (torchvision's key <c>layer1.0.conv1.weight</c> is
/// the network's <c>encoder.layer1.0.conv1.weight</c>). Every encoder tensor (parameters and BN statistics, the unused
/// classifier aside) must be in the file with its shape, so a wrong file fails loudly instead of half-loading.
/// </summary>
public static class PretrainedWeights
{
    /// <summary>Copies the encoder of every network from the state dict in <paramref name="path"/>; returns the number
    /// of tensors copied per network.</summary>
    public static int LoadEncoder(string path, IEnumerable<Segmenter2D> networks)
    {
        var source = StateDictFile.Read(path);
        try
        {
            int copied = 0;
            foreach (var net in networks) copied = LoadEncoder(path, source, net);
            return copied;
        }
        finally { foreach (var t in source.Values) t.Dispose(); }
    }

    static int LoadEncoder(string path, Dictionary<string, Tensor> source, Segmenter2D net)
    {
        // a key is taken as the network's own name or as the name inside its encoder module (torchvision's names)
        Tensor? Find(string name)
        {
            if (source.TryGetValue(name, out var t)) return t;
            foreach (var prefix in net.EncoderPrefixes)
                if (name.StartsWith(prefix) && source.TryGetValue(name[prefix.Length..], out t)) return t;
            return null;
        }
        var targets = net.state_dict().Where(kv => net.EncoderPrefixes.Any(p => kv.Key.StartsWith(p)) && !kv.Key.StartsWith("encoder.fc.")).ToList();
        var missing = targets.Where(kv => Find(kv.Key) is null).Select(kv => kv.Key).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"weights file '{path}': {missing.Count} of the {targets.Count} encoder tensors of {net.GetName()} are missing " +
                                           $"(first: {string.Join(", ", missing.Take(3))}); expected a state dict of the same encoder (e.g. torchvision's resnet for {Segmenter2D.Name(net.Config.Kind)})");
        using var noGrad = no_grad();
        foreach (var (name, target) in targets)
        {
            var src = Find(name)!;
            if (!src.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"weights file '{path}': {name} has shape [{string.Join(",", src.shape)}], {net.GetName()} needs [{string.Join(",", target.shape)}]");
            target.copy_(src);
        }
        return targets.Count;
    }
}
