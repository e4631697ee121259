using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Interop;

/// <summary>
/// SemiSeg networks to and from PyTorch state dicts under the reference code's parameter names, so that
/// <c>model.load_state_dict(torch.load(file))</c> works on the reference class (SSL4MIS <c>UNet(in_chns, class_num)</c>,
/// UA-MT <c>VNet(n_channels, n_classes, normalization='batchnorm')</c>) and the reference's checkpoints load here.
/// Loading is strict, as PyTorch's load_state_dict(strict=True): every parameter and buffer present, none unexpected,
/// every shape equal; one exception, <c>num_batches_tracked</c>, which files from PyTorch before 0.4.1 lack (and which
/// evaluation does not use), is allowed to be missing.
/// </summary>
public static class PyTorchWeights
{
    /// <summary>Writes <paramref name="net"/>'s state dict (parameters and BatchNorm buffers) under the reference names.</summary>
    public static ReferenceArchitecture Export(nn.Module net, string path, WeightsFormat format)
    {
        var arch = ReferenceArchitecture.Of(net);
        var sd = net.state_dict();
        StateDictFile.Write(path, format, ReferenceNames.Map(net, arch).Select(p => (p.reference, sd[p.semiseg])).ToList());
        return arch;
    }

    /// <summary>The network a reference-named state dict file holds, built and loaded; the caller owns it.</summary>
    public static (nn.Module<Tensor, Tensor> net, ReferenceArchitecture arch) LoadNetwork(string path)
    {
        var sd = StateDictFile.Read(path);
        try
        {
            var arch = ReferenceNames.Infer(sd, path);
            var net = arch.CreateNetwork();
            try { Copy(net, arch, sd, path); }
            catch { net.Dispose(); throw; }
            net.eval();
            return (net, arch);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    /// <summary>Loads a reference-named state dict file into an existing SemiSeg network of the same architecture.</summary>
    public static ReferenceArchitecture Load(nn.Module net, string path)
    {
        var sd = StateDictFile.Read(path);
        try
        {
            var arch = ReferenceArchitecture.Of(net);
            Copy(net, arch, sd, path);
            return arch;
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    /// <summary>Copies the file's tensors into the network; one error lists every missing, unexpected and mis-shaped key.</summary>
    static void Copy(nn.Module net, ReferenceArchitecture arch, IReadOnlyDictionary<string, Tensor> sd, string path)
    {
        var target = net.state_dict();
        var map = ReferenceNames.Map(net, arch);
        var missing = new List<string>();
        var misShaped = new List<string>();
        var plan = new List<(Tensor dst, Tensor src)>();
        foreach (var (ours, theirs) in map)
        {
            var dst = target[ours];
            if (!sd.TryGetValue(theirs, out var src))
            {
                if (!theirs.EndsWith(".num_batches_tracked", StringComparison.Ordinal)) missing.Add(theirs);
                continue;
            }
            // a 0-d tensor (num_batches_tracked) may come back from the unpickler as shape [1]
            bool sameShape = src.shape.SequenceEqual(dst.shape) || (dst.dim() == 0 && src.numel() == 1);
            if (!sameShape) { misShaped.Add($"{theirs} [{string.Join(",", src.shape)}] (the network needs [{string.Join(",", dst.shape)}])"); continue; }
            if (src.is_floating_point() != dst.is_floating_point())
            { misShaped.Add($"{theirs} dtype {src.dtype} (the network needs {dst.dtype})"); continue; }
            plan.Add((dst, src));
        }
        var expected = map.Select(m => m.reference).ToHashSet();
        var unexpected = sd.Keys.Where(k => !expected.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count + unexpected.Count + misShaped.Count > 0)
        {
            static string List(string what, List<string> items) => items.Count == 0 ? "" :
                $"; {items.Count} {what}: {string.Join(", ", items.Take(6))}{(items.Count > 6 ? ", ..." : "")}";
            throw new InvalidDataException($"'{path}' does not fit {arch.Describe()}{List("missing", missing)}{List("unexpected", unexpected)}{List("mis-shaped", misShaped)}");
        }
        using var noGrad = no_grad();
        foreach (var (dst, src) in plan)
        {
            using var v = src.to_type(dst.dtype).reshape(dst.shape);
            if (!v.isfinite().all().item<bool>()) throw new InvalidDataException($"'{path}': a tensor holds NaN or infinite values");
            dst.copy_(v);
        }
    }
}
