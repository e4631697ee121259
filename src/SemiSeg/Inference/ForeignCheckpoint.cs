using SemiSeg.Interop;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Inference;

/// <summary>
/// A PyTorch state dict (.pt/.pth/.safetensors under the SSL4MIS UNet's or the UA-MT VNet's parameter names) used
/// where a SemiSeg checkpoint is expected (evaluate, predict, export, train --init-from). Such a file carries no
/// metadata: the network kind, input channels, widths and class count are read from its parameter names and shapes
/// (exact, not guessed); the input size the network sees is not in the file and comes from the caller
/// (--input-size), by default the references' own: 256x256 for SSL4MIS's 2D UNet on ACDC, 80x112x112 (d,h,w) for
/// the LA lineage's VNet.
/// </summary>
public static class ForeignCheckpoint
{
    public const string MethodName = "pytorch-state-dict";

    /// <summary>True for a PyTorch state-dict file (zip archive of torch.save or safetensors), false for a SemiSeg
    /// checkpoint or anything else.</summary>
    public static bool Recognise(string path) => StateDictFile.Recognise(path);

    public static CheckpointMeta Meta(ReferenceArchitecture arch, string path, int[]? inputSize)
    {
        bool is3D = arch.Kind == ReferenceKind.UamtVNet;
        var size = inputSize ?? (is3D ? new[] { 80, 112, 112 } : new[] { 256, 256 });
        if (size.Length != (is3D ? 3 : 2))
            throw new ArgumentException($"--input-size {string.Join(",", size)}: '{path}' holds a {(is3D ? "3D network: give d,h,w" : "2D network: give h,w")}");
        var meta = new CheckpointMeta
        {
            Method = MethodName,
            Network = arch.UNet,
            Network3D = arch.Network3D,
            PatchDepth = is3D ? size[0] : 0,
            PatchHeight = size[^2],
            PatchWidth = size[^1],
        };
        if (CheckpointFile.CheckMeta(meta) is string problem) throw new InvalidDataException($"'{path}': {problem}");
        return meta;
    }

    /// <summary>The network the file holds, loaded (evaluation mode), and the metadata a checkpoint would carry.</summary>
    public static (nn.Module<Tensor, Tensor> net, CheckpointMeta meta) Load(string path, int[]? inputSize)
    {
        var (net, arch) = PyTorchWeights.LoadNetwork(path);
        try { return (net, Meta(arch, path, inputSize)); }
        catch { net.Dispose(); throw; }
    }

    /// <summary>One line saying what was read from the file and what was assumed.</summary>
    public static string Describe(string path, CheckpointMeta meta)
    {
        var n = meta.Network;
        string what = meta.Network3D is { } n3
            ? $"UA-MT VNet ({n3.Filters} filters, {n.InChannels} input channel(s), {n.NumClasses} classes)"
            : $"SSL4MIS UNet (widths {string.Join("-", n.Features)}, {(n.Up == UpMode.Bilinear ? "bilinear" : "transposed-convolution")} up path, {n.InChannels} input channel(s), {n.NumClasses} classes)";
        string size = meta.Network3D is null ? $"{meta.PatchHeight}x{meta.PatchWidth}" : $"{meta.PatchDepth}x{meta.PatchHeight}x{meta.PatchWidth} (d,h,w)";
        return $"'{path}': PyTorch state dict, read as {what} from its parameter names and shapes; input size {size} (--input-size)";
    }
}
