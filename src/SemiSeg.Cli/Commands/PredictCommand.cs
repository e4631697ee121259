using System.CommandLine;
using SemiSeg.Data;
using SemiSeg.Runtime;
using SemiSeg.Training;

namespace SemiSeg.Cli.Commands;

internal static class PredictCommand
{
    static readonly string[] Extensions = { ".nii.gz", ".nii", ".h5", ".hdf5", ".png" };

    public static Command Create()
    {
        var cmd = new Command("predict", "Predict masks for an image or a folder of images (.nii/.nii.gz, .h5, .png); writes NIfTI (spacing and affine kept) or PNG.");
        var ckpt = new Option<string>("--checkpoint", "-c") { Description = "Checkpoint (best.ckpt of a run)", Required = true };
        var input = new Option<string>("--input", "-i") { Description = "Image file or folder of images", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Folder for the predicted masks", Required = true };
        var format = new Option<string>("--format") { Description = "auto (PNG for PNG input, NIfTI otherwise), nifti or png", DefaultValueFactory = _ => "auto" };
        format.AcceptOnlyFromAmong("auto", "nifti", "png");
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        var lcc = new Option<bool>("--largest-component") { Description = "Keep only each class's largest connected component per volume (3D, 26-connected; 8-connected for single images)" };
        foreach (var o in new Option[] { ckpt, input, output, format, threads, lcc }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            TorchRuntime.Configure(r.GetValue(threads));
            using var gate = FinalizerGuard.Enter(); // finalizers only between native calls (see FinalizerGuard)
            FinalizerGuard.SafePoint();
            var (net, meta) = Checkpoint.LoadAnyNetwork(r.GetValue(ckpt)!);
            using var _ = net;
            var inPath = r.GetValue(input)!;
            List<string> files;
            if (Directory.Exists(inPath))
                files = Directory.EnumerateFiles(inPath).Where(f => Extensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase))).OrderBy(f => f, StringComparer.Ordinal).ToList();
            else if (File.Exists(inPath)) files = new() { inPath };
            else throw new FileNotFoundException($"input '{inPath}' does not exist", inPath);
            if (files.Count == 0) throw new InvalidDataException($"input folder '{inPath}' holds no .nii/.nii.gz/.h5/.png images");
            var outDir = r.GetValue(output)!;
            int written = 0;
            foreach (var f in files)
            {
                FinalizerGuard.SafePoint();
                var vol = VolumeIO.Read(f, null);
                byte[] pred;
                if (meta.Network3D is not null)
                {
                    // 3D checkpoint: sliding window over the (D, H, W) volume, half-patch strides
                    var patch = (meta.PatchDepth, meta.PatchHeight, meta.PatchWidth);
                    pred = SlidingWindow.Predict(net, vol.Image, vol.Depth, vol.Height, vol.Width, meta.Network.NumClasses, patch,
                        SlidingWindow.HalfPatch(patch), r.GetValue(lcc)).Labels;
                }
                else
                {
                    pred = Inference.PredictVolume((Models.UNet2D)net, vol, meta.PatchHeight, meta.PatchWidth, meta.LinearImageResize);
                    if (r.GetValue(lcc)) pred = Inference.KeepLargestComponent(pred, vol, meta.Network.NumClasses);
                }
                var fmt = r.GetValue(format) switch { "auto" => Png.IsPngPath(f) ? "png" : "nifti", var x => x! };
                written += Write(vol, pred, outDir, fmt, files);
            }
            Console.WriteLine($"predicted {files.Count} image(s) with {r.GetValue(ckpt)}; wrote {written} mask file(s) to {outDir}");
            return 0;
        });
        return cmd;
    }

    /// <summary>Writes one mask file (NIfTI) or one PNG per slice; never over an input. Returns the number of files.</summary>
    static int Write(Volume vol, byte[] pred, string outDir, string format, IReadOnlyList<string> inputs)
    {
        var masked = new Volume(vol.Name, vol.Depth, vol.Height, vol.Width, vol.Image, pred) { Spacing = vol.Spacing, Affine = vol.Affine };
        if (format == "nifti")
        {
            var path = Path.Combine(outDir, vol.Name + "_pred.nii.gz");
            AtomicFile.EnsureNotInput(path, inputs);
            Nifti.Write(path, masked, asLabel: true);
            return 1;
        }
        for (int z = 0; z < vol.Depth; z++)
        {
            var path = Path.Combine(outDir, vol.Depth == 1 ? vol.Name + "_pred.png" : $"{vol.Name}_slice{z:000}_pred.png");
            AtomicFile.EnsureNotInput(path, inputs);
            Png.WriteMask(path, masked.SliceLabel(z)!, vol.Height, vol.Width);
        }
        return vol.Depth;
    }
}
