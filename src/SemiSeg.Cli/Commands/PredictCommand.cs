using SemiSeg.Inference;
using System.CommandLine;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using SemiSeg.Runtime;
using SemiSeg.Training;

namespace SemiSeg.Cli.Commands;

internal static class PredictCommand
{
    static readonly string[] Extensions = { ".nii.gz", ".nii", ".h5", ".hdf5", ".png", ".mha", ".mhd" };

    public static Command Create()
    {
        var cmd = new Command("predict", "Predict masks for an image or a folder of images (.nii/.nii.gz, .h5, .png, .mha/.mhd); writes NIfTI (spacing and affine kept), MetaImage (spacing, origin and orientation kept) or PNG.");
        var ckpt = new Option<string>("--checkpoint", "-c") { Description = "Checkpoint (best.ckpt of a run), or a PyTorch state dict (.pt/.pth/.safetensors) of the SSL4MIS UNet or UA-MT VNet under the reference's parameter names", Required = true };
        var inputSize = MetricOptions.InputSize();
        var input = new Option<string>("--input", "-i") { Description = "Image file or folder of images", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Folder for the predicted masks", Required = true };
        var format = new Option<string>("--format") { Description = "auto (PNG for PNG input, MetaImage .mha for .mha/.mhd input, NIfTI otherwise), nifti, mha or png", DefaultValueFactory = _ => "auto" };
        format.AcceptOnlyFromAmong("auto", "nifti", "mha", "png");
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        var lcc = new Option<bool>("--largest-component") { Description = "Keep only each class's largest connected component per volume (3D, 26-connected; 8-connected for single images)" };
        var overlays = new Option<bool>("--overlays") { Description = "Also write a PNG picture of each prediction (image | prediction, class legend) into OUTPUT/overlays/NAME.png; a volume is shown by its slice with the most predicted foreground" };
        foreach (var o in new Option[] { ckpt, input, output, format, threads, lcc, inputSize, overlays, MetricOptions.Device() }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            TorchRuntime.Configure(r.GetValue(threads));
            using var gate = FinalizerGuard.Enter(); // finalizers only between native calls (see FinalizerGuard)
            FinalizerGuard.SafePoint();
            // 2D: slice by slice at the training size; 3D: sliding window over the (D, H, W) volume, half-patch strides
            var (inferer, meta) = MetricOptions.LoadInferer(r.GetValue(ckpt)!, r.GetValue(inputSize), largestComponent: r.GetValue(lcc), device: r.GetValue<string>("--device"));
            using var _ = inferer;
            var inPath = r.GetValue(input)!;
            List<string> files;
            if (Directory.Exists(inPath))
                files = Directory.EnumerateFiles(inPath).Where(f => Extensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase))).OrderBy(f => f, StringComparer.Ordinal).ToList();
            else if (File.Exists(inPath)) files = new() { inPath };
            else throw new FileNotFoundException($"input '{inPath}' does not exist", inPath);
            if (files.Count == 0) throw new InvalidDataException($"input folder '{inPath}' holds no .nii/.nii.gz/.h5/.png/.mha/.mhd images");
            var outDir = r.GetValue(output)!;
            var names = OutputNames(files, f => r.GetValue(format) switch { "auto" => Png.IsPngPath(f) ? "png" : MetaImage.IsMetaImagePath(f) ? "mha" : "nifti", var x => x! }, outDir);
            int written = 0;
            var pictures = r.GetValue(overlays) ? new OverlaySet(meta.ClassNames.Length == inferer.NumClasses ? meta.ClassNames : DefaultClassNames(inferer.NumClasses)) : null;
            foreach (var f in files)
            {
                FinalizerGuard.SafePoint();
                var vol = VolumeIO.Read(f, null);
                var pred = inferer.Predict(vol);
                written += Write(vol, pred, names[f], files);
                if (pictures is not null)
                {
                    // named as its mask, less the _pred suffix and extension (and _slice000 of a multi-plane PNG's masks)
                    var stem = Path.GetFileName(names[f][0]);
                    stem = stem[..stem.LastIndexOf("_pred", StringComparison.Ordinal)];
                    if (names[f].Length > 1) stem = stem[..^"_slice000".Length];
                    pictures.Add(stem, vol, null, pred);
                    pictures.WriteOne(outDir, stem);
                }
            }
            Console.WriteLine($"predicted {files.Count} image(s) with {r.GetValue(ckpt)}; wrote {written} mask file(s) to {outDir}" +
                (pictures is null ? "" : $" and {files.Count} picture(s) to {Path.Combine(outDir, "overlays")}"));
            return 0;
        });
        return cmd;
    }

    static string Stem(string f)
    {
        var name = Path.GetFileName(f);
        return name.EndsWith(".nii.gz", StringComparison.OrdinalIgnoreCase) ? name[..^7] : Path.GetFileNameWithoutExtension(name);
    }

    /// <summary>
    /// The mask file(s) of every input, planned before anything is predicted: inputs that share a name stem
    /// (case.h5 and case.nii.gz) get their extension in the output name (case_h5_pred.nii.gz, case_niigz_pred.nii.gz),
    /// and any two inputs that would still write one file are refused, so no mask overwrites another.
    /// </summary>
    static Dictionary<string, string[]> OutputNames(IReadOnlyList<string> files, Func<string, string> formatOf, string outDir)
    {
        var clash = files.GroupBy(Stem, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).SelectMany(g => g).ToHashSet();
        var plan = new Dictionary<string, string[]>();
        var owner = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var f in files)
        {
            var stem = clash.Contains(f) ? $"{Stem(f)}_{Path.GetFileName(f)[(Stem(f).Length + 1)..].Replace(".", "").ToLowerInvariant()}" : Stem(f);
            int depth = formatOf(f) == "png" ? VolumeIO.ReadShape(f).D : 1;
            plan[f] = formatOf(f) == "nifti" ? new[] { Path.Combine(outDir, stem + "_pred.nii.gz") }
                : formatOf(f) == "mha" ? new[] { Path.Combine(outDir, stem + "_pred.mha") }
                : Enumerable.Range(0, depth).Select(z => Path.Combine(outDir, depth == 1 ? stem + "_pred.png" : $"{stem}_slice{z:000}_pred.png")).ToArray();
            foreach (var o in plan[f])
            {
                AtomicFile.EnsureNotInput(o, files);
                if (owner.TryGetValue(o, out var other))
                    throw new IOException($"inputs '{other}' and '{f}' would both be predicted into '{o}'; rename one of them");
                owner[o] = f;
            }
        }
        return plan;
    }

    /// <summary>Writes the planned mask file: one NIfTI, or one PNG per slice. Returns the number of files.</summary>
    static int Write(Volume vol, byte[] pred, string[] paths, IReadOnlyList<string> inputs)
    {
        var masked = new Volume(vol.Name, vol.Depth, vol.Height, vol.Width, vol.Image, pred) { Spacing = vol.Spacing, Affine = vol.Affine };
        if (paths.Length == 1 && paths[0].EndsWith(".nii.gz", StringComparison.Ordinal))
        {
            AtomicFile.EnsureNotInput(paths[0], inputs);
            Nifti.Write(paths[0], masked, asLabel: true);
            return 1;
        }
        if (paths.Length == 1 && paths[0].EndsWith(".mha", StringComparison.Ordinal))
        {
            AtomicFile.EnsureNotInput(paths[0], inputs);
            MetaImage.Write(paths[0], vol.Depth, vol.Height, vol.Width, bytes: pred, compress: true, geometry: masked);
            return 1;
        }
        if (paths.Length != vol.Depth) throw new InvalidDataException($"'{vol.Name}': {vol.Depth} slices read, {paths.Length} planned from its header");
        for (int z = 0; z < vol.Depth; z++)
        {
            AtomicFile.EnsureNotInput(paths[z], inputs);
            Png.WriteMask(paths[z], masked.SliceLabel(z)!, vol.Height, vol.Width);
        }
        return vol.Depth;
    }

    static IReadOnlyList<string> DefaultClassNames(int numClasses) => new[] { "background" }.Concat(Enumerable.Range(1, numClasses - 1).Select(c => $"class {c}")).ToList();
}
