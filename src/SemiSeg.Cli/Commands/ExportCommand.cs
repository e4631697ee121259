using System.CommandLine;
using SemiSeg.Inference;
using SemiSeg.Interop;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Cli.Commands;

/// <summary>`semiseg export`: a checkpoint's inference network as a PyTorch state dict (reference names) or ONNX.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var cmd = new Command("export", "Write a checkpoint's network for PyTorch or a deployment runtime: pt (torch.save state dict) or safetensors under the reference code's parameter names (SSL4MIS UNet, UA-MT VNet: model.load_state_dict(torch.load(OUT)) on the reference class), or onnx (opset 17, dynamic batch and spatial size, evaluation mode).");
        var ckpt = new Argument<string>("checkpoint") { Description = "SemiSeg checkpoint (best.ckpt) or a PyTorch state dict to convert" };
        var output = new Argument<string>("output") { Description = "File to write (.pt/.pth, .safetensors or .onnx)" };
        var format = new Option<string?>("--format", "-f") { Description = "pt, safetensors or onnx (default: from the output's extension)" };
        format.AcceptOnlyFromAmong("pt", "safetensors", "onnx");
        var sample = new Option<string?>("--sample") { Description = "Also write a safetensors file with a fixed random input of the checkpoint's patch size ('input') and SemiSeg's evaluation-mode logits for it ('logits'), to check the exported model elsewhere" };
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        cmd.Add(ckpt); cmd.Add(output);
        foreach (var o in new Option[] { format, sample, threads }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            TorchRuntime.Configure(r.GetValue(threads));
            string src = r.GetValue(ckpt)!, dst = r.GetValue(output)!;
            var fmt = r.GetValue(format) switch
            {
                "pt" => WeightsFormat.Pt, "safetensors" => WeightsFormat.Safetensors, "onnx" => WeightsFormat.Onnx,
                _ => StateDictFile.FormatOf(dst),
            };
            var (net, meta) = CheckpointFile.LoadAnyNetwork(src);
            using var _ = net;
            net.eval();
            Data.AtomicFile.EnsureNotInput(dst, new[] { src });
            ReferenceArchitecture arch;
            try { arch = fmt == WeightsFormat.Onnx ? OnnxExport.Export(net, dst) : PyTorchWeights.Export(net, dst, fmt); }
            catch (NotSupportedException e) { throw new ArgumentException($"'{src}': {e.Message}", e); }
            Console.WriteLine($"wrote {dst}: {arch.Describe()}, {fmt.ToString().ToLowerInvariant()}{(fmt == WeightsFormat.Onnx ? $" (opset {OnnxExport.Opset}, input 'image', output 'logits')" : "")}");
            if (r.GetValue(sample) is string samplePath)
            {
                using var scope = NewDisposeScope();
                var shape = meta.Network3D is null
                    ? new long[] { 1, meta.Network.InChannels, meta.PatchHeight, meta.PatchWidth }
                    : new long[] { 1, meta.Network.InChannels, meta.PatchDepth, meta.PatchHeight, meta.PatchWidth };
                var x = randn(shape, generator: new Generator(2023));
                Tensor y;
                using (no_grad()) y = net.forward(x);
                StateDictFile.Write(samplePath, WeightsFormat.Safetensors, new[] { ("input", x), ("logits", y) });
                Console.WriteLine($"wrote {samplePath}: input [{string.Join(",", shape)}] and SemiSeg's logits [{string.Join(",", y.shape)}]");
            }
            return 0;
        });
        return cmd;
    }
}
