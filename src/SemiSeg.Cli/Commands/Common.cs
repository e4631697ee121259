using System.CommandLine;
using System.Globalization;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using SemiSeg.Inference;

namespace SemiSeg.Cli.Commands;

/// <summary>Options shared by train / evaluate: where the data is and how it is split.</summary>
internal sealed class DataOptions
{
    public readonly Option<string> Data = new("--data", "-d")
    {
        Description = "Dataset: an ACDC root in the SSL4MIS layout (has train_slices.list), an LA root (train.list + test.list + NAME/mri_norm2.h5; 3D networks only), an HC18 root (training_set/ + training_set_pixel_size_and_HC.csv), a PSFH root (image_mha/ + label_mha/), a folder in the imagesTr/labelsTr layout, or a CSV (image,label,split)",
        Required = true,
    };
    public readonly Option<int?> Labeled = new("--labeled")
    {
        Description = "ACDC: labeled patients (1, 3, 7, 14, 21, 28, 35, 70; default 7). LA: labeled volumes (4, 8, 16; default 8). HC18, PSFH and own data: number of labeled training images/cases to use (default: all with labels)",
    };
    public readonly Option<int?> LabeledSlices = new("--labeled-slices") { Description = "ACDC: take exactly the first N slices of train_slices.list as labeled" };
    public readonly Option<int> NumClasses = new("--num-classes") { Description = "Own data: number of classes including background", DefaultValueFactory = _ => 4 };

    public void AddTo(Command c) { c.Add(Data); c.Add(Labeled); c.Add(LabeledSlices); c.Add(NumClasses); }

    public DatasetManifest Load(ParseResult r) =>
        DatasetDetection.Load(r.GetValue(Data)!, r.GetValue(Labeled), r.GetValue(LabeledSlices), r.GetValue(NumClasses));

    /// <summary>The data as volumes for a 3D run (see <see cref="DatasetDetection.LoadVolumes"/>).</summary>
    public VolumeSplit LoadVolumes(ParseResult r, bool scoring = false) =>
        DatasetDetection.LoadVolumes(r.GetValue(Data)!, r.GetValue(Labeled), r.GetValue(LabeledSlices), r.GetValue(NumClasses), scoring);
}

internal static class MetricOptions
{
    public static Option<MetricMode> Mode() => new("--mode")
    {
        Description = "medpy: voxel units, the SSMIS literature's convention; spacing: mm, symmetric (HD95 = max of directed 95th percentiles, ASSD)",
        DefaultValueFactory = _ => MetricMode.Medpy,
    };

    public static Option<EmptyPolicy> Policy() => new("--empty-policy")
    {
        Description = "When a class is empty in prediction or reference: exclude (NaN, left out of means, counted), zero (SSL4MIS validation / BCP), worst (volume diagonal)",
        DefaultValueFactory = _ => EmptyPolicy.Exclude,
    };

    public static Option<string?> Spacing() => new("--spacing")
    {
        Description = "Voxel spacing z,y,x in mm for --mode spacing. Without it each case's spacing comes from its file's header (NIfTI pixdim, MetaImage ElementSpacing) or the dataset's pixel-size table, and files that state none (HDF5, PNG) are refused; with it, it is used for every case, with a warning where a file states another. An error with --mode medpy (voxel units). metrics.json records each case's spacing and its source",
    };

    /// <summary>`--device` (train, pretrain, evaluate, predict, bench): see <see cref="Runtime.ComputeDevice"/>.</summary>
    public static Option<string> Device() => new("--device") { Description = Runtime.ComputeDevice.Help, DefaultValueFactory = _ => "auto" };

    public static Option<string?> Stride() => new("--stride") { Description = "3D networks: sliding-window strides d,h,w in voxels (default: half the patch; the LA lineage tests with 4,18,18)" };

    public static Option<string?> InputSize() => new("--input-size")
    {
        Description = "For a PyTorch state dict given as --checkpoint (it records no input size): h,w for the 2D UNet (default 256,256, SSL4MIS's ACDC size) or d,h,w for the VNet (default 80,112,112, the LA lineage's patch); each a multiple of 16. The network, its input channels and class count are read from the file's parameter names and shapes",
    };

    public static int[]? ParseInputSize(string? s)
    {
        if (string.IsNullOrWhiteSpace(s)) return null;
        var parts = s.Split(',').Select(p => int.TryParse(p.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"--input-size '{s}': expected positive integers h,w or d,h,w")).ToArray();
        if (parts.Length is not (2 or 3)) throw new ArgumentException($"--input-size '{s}': expected h,w or d,h,w");
        return parts;
    }

    /// <summary>A checkpoint's (or a PyTorch state dict's) network with its inference (see
    /// <see cref="CheckpointFile.LoadInferer"/>); for a state dict, prints what was read from it.</summary>
    public static (IInferer inferer, CheckpointMeta meta) LoadInferer(string path, string? inputSize, (int d, int h, int w)? stride = null, bool largestComponent = false, string? device = null)
    {
        var loaded = CheckpointFile.LoadInferer(path, stride, largestComponent, ParseInputSize(inputSize), Runtime.ComputeDevice.Resolve(device));
        if (loaded.meta.Method == ForeignCheckpoint.MethodName) Console.WriteLine(ForeignCheckpoint.Describe(path, loaded.meta));
        return loaded;
    }

    public static int[]? ParseTriple(string? s, string option)
    {
        if (string.IsNullOrWhiteSpace(s)) return null;
        var parts = s.Split(',').Select(p => int.TryParse(p.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"{option} '{s}': expected three positive integers d,h,w")).ToArray();
        if (parts.Length != 3) throw new ArgumentException($"{option} '{s}': expected three integers d,h,w");
        return parts;
    }

    public static double[]? ParseSpacing(string? s)
    {
        if (string.IsNullOrWhiteSpace(s)) return null;
        var parts = s.Split(',').Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"--spacing '{s}': expected three positive numbers z,y,x")).ToArray();
        if (parts.Length != 3) throw new ArgumentException($"--spacing '{s}': expected three numbers z,y,x");
        return parts;
    }
}
