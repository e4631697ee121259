namespace SemiSeg.Data;

/// <summary>
/// Which layout a dataset path is in and how it loads, for the CLI and for programs that use SemiSeg as a library:
/// an ACDC root in the SSL4MIS layout (train_slices.list), an LA root (train.list + test.list + NAME/mri_norm2.h5; 3D
/// only), an HC18 root, a PSFH root, otherwise own data (imagesTr/labelsTr folder or a CSV). Adding a layout: its
/// reader (Data/) and one line in <see cref="Load"/> (and <see cref="LoadVolumes"/> if it has volumes of its own).
/// </summary>
public static class DatasetDetection
{
    public static bool IsAcdc(string source) => Directory.Exists(source) && File.Exists(Path.Combine(source, "train_slices.list"));

    /// <summary>The dataset as slices for a 2D run. <paramref name="labeled"/>: ACDC patients (default 7), otherwise the
    /// number of labeled images/cases (default all); <paramref name="numClasses"/> is own data's class count.</summary>
    public static DatasetManifest Load(string source, int? labeled = null, int? labeledSlices = null, int numClasses = 4)
    {
        if (IsAcdc(source)) return AcdcDataset.Load(source, labeled ?? 7, labeledSlices);
        if (LeftAtriumDataset.IsLa(source))
            throw new ArgumentException($"'{source}' is in the LA layout (3D volumes stored X,Y,Z): train it with --network vnet or unet3d; evaluate a 3D checkpoint on it");
        if (Hc18Dataset.IsHc18(source)) return Hc18Dataset.Load(source, labeled);
        if (PsfhDataset.IsPsfh(source)) return PsfhDataset.Load(source, labeled);
        return CustomDataset.Load(source, numClasses, labeled);
    }

    /// <summary>The dataset as volumes for a 3D run: the LA layout (<paramref name="labeled"/> volumes, default 8),
    /// ACDC (labeled patients' volumes, default 7), or any other layout's volumes.</summary>
    /// <param name="scoring">evaluation only reads val/test: the labeled count then only has to be valid.</param>
    public static VolumeSplit LoadVolumes(string source, int? labeled = null, int? labeledSlices = null, int numClasses = 4, bool scoring = false)
    {
        if (LeftAtriumDataset.IsLa(source)) return LeftAtriumDataset.Load(source, labeled ?? (scoring ? 1 : 8));
        if (IsAcdc(source)) return AcdcDataset.LoadVolumes(source, labeled ?? 7);
        return VolumeSplit.FromManifest(Load(source, labeled, labeledSlices, numClasses));
    }
}
