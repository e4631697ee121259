using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Models;

/// <summary>
/// Encoder weights saved from PyTorch (<c>torch.save(model.state_dict(), FILE)</c>, the zip format of PyTorch ≥ 1.6),
/// read through TorchSharp.PyBridge: e.g. torchvision's ImageNet ResNet-34, which
/// <see cref="ResNetUNet2D"/>'s encoder takes under its own names (torchvision's key <c>layer1.0.conv1.weight</c> is
/// the network's <c>encoder.layer1.0.conv1.weight</c>). Every encoder tensor (parameters and BN statistics, the unused
/// classifier aside) must be in the file with its shape, so a wrong file fails loudly instead of half-loading.
/// </summary>
public static class PretrainedWeights
{
    /// <summary>True when <paramref name="path"/> is a PyTorch zip file (starts with the zip signature).</summary>
    public static bool IsPyTorchFile(string path)
    {
        if (!File.Exists(path)) return false;
        using var fs = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4];
        return fs.Read(head) == 4 && head[0] == 0x50 && head[1] == 0x4b && head[2] == 0x03 && head[3] == 0x04;
    }

    /// <summary>The tensors of a PyTorch state dict file by name (the caller disposes them).</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"weights file '{path}' does not exist", path);
        try
        {
            var table = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(path);
            var d = new Dictionary<string, Tensor>();
            foreach (System.Collections.DictionaryEntry e in table)
                if (e.Value is Tensor t) d[(string)e.Key] = t;
            if (d.Count == 0) throw new InvalidDataException("it holds no tensors");
            return d;
        }
        catch (Exception e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"weights file '{path}': not a PyTorch state dict saved with torch.save(model.state_dict(), ...) ({e.Message})", e);
        }
    }

    /// <summary>Copies the encoder of every network from the state dict in <paramref name="path"/>; returns the number
    /// of tensors copied per network.</summary>
    public static int LoadEncoder(string path, IEnumerable<Segmenter2D> networks)
    {
        var source = Read(path);
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
