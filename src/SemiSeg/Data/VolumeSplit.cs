namespace SemiSeg.Data;

/// <summary>A volume-level split for 3D training: labeled, unlabeled, validation and test cases.</summary>
public sealed record VolumeSplit(string Name, IReadOnlyList<CaseRef> Labeled, IReadOnlyList<CaseRef> Unlabeled,
    IReadOnlyList<CaseRef> Val, IReadOnlyList<CaseRef> Test, IReadOnlyList<string> ClassNames)
{
    public int NumClasses => ClassNames.Count;

    /// <summary>How a case is read as (D, H, W) (the LA files are stored (X, Y, Z)); default <see cref="VolumeIO.Read"/>.</summary>
    public Func<CaseRef, Volume> Reader { get; init; } = ReadFiles;

    /// <summary>The default reader: each case is its image and label files (a PSFHS image's equal planes as one).</summary>
    public static readonly Func<CaseRef, Volume> ReadFiles = c => VolumeIO.Read(c);

    /// <summary>The volumes behind a slice-level dataset (ACDC, a folder of NIfTI volumes, a CSV): each case whose slices
    /// are labeled, each whose slices are unlabeled, and the same validation and test volumes.</summary>
    public static VolumeSplit FromManifest(DatasetManifest m)
    {
        var labeled = m.Labeled.Select(s => s.Case).Distinct().ToList();
        var unlabeled = m.Unlabeled.Select(s => s.Case).Distinct().Where(c => !labeled.Contains(c)).ToList();
        return new VolumeSplit(m.Name, labeled, unlabeled, m.Val, m.Test, m.ClassNames);
    }

    public string Summary() => $"{Name}: {Labeled.Count} labeled volumes, {Unlabeled.Count} unlabeled, {Val.Count} val, {Test.Count} test, {NumClasses} classes";
}
