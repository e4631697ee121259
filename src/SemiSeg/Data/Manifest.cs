namespace SemiSeg.Data;

public enum Split { Train, Val, Test }

/// <summary>Meta-labels that come free with a scan: patient, cardiac phase (frame), slice position.</summary>
public sealed record MetaLabels(string Patient, string Phase, int SliceIndex, int SliceCount)
{
    /// <summary>Relative slice position in [0, 1) bucketed into <paramref name="buckets"/> groups.</summary>
    public int PositionBucket(int buckets) => SliceCount <= 1 ? 0 : Math.Min(buckets - 1, SliceIndex * buckets / SliceCount);
}

/// <summary>One case on disk: an image file and, when labeled, a label file (the same file for HDF5). 2D ultrasound
/// layouts (HC18) carry the pixel size in a table rather than in the image, and HC18 its reference head circumference.</summary>
public sealed record CaseRef(string Name, string ImagePath, string? LabelPath, Split Split)
{
    /// <summary>Isotropic in-plane pixel size in mm from the dataset's table; null = from the file.</summary>
    public double? PixelSizeMm { get; init; }
    /// <summary>The reference head circumference in mm (HC18 training table).</summary>
    public double? HeadCircumferenceMm { get; init; }
    /// <summary>The image file's planes are the channels of one 2D image (PSFHS stores its grey images as three
    /// planes, <c>DimSize = 256 256 3</c>): read as one plane, <see cref="VolumeIO.PlanesToGrey"/>.</summary>
    public bool PlanesAreChannels { get; init; }
}

/// <summary>One 2D training item: slice <see cref="Z"/> of a case (0 for a 2D file).</summary>
public sealed record SliceRef(CaseRef Case, int Z, MetaLabels Meta)
{
    public bool Labeled => Case.LabelPath != null;
}

/// <summary>What a training run sees: labeled and unlabeled 2D slices, validation and test volumes.</summary>
public sealed class DatasetManifest
{
    public required string Name { get; init; }
    public required int NumClasses { get; init; }
    public required string[] ClassNames { get; init; }
    public required IReadOnlyList<SliceRef> Labeled { get; init; }
    public required IReadOnlyList<SliceRef> Unlabeled { get; init; }
    public required IReadOnlyList<CaseRef> Val { get; init; }
    public required IReadOnlyList<CaseRef> Test { get; init; }
    /// <summary>Spacing (z, y, x) to use when the files carry none (HDF5); null = from the files.</summary>
    public double[]? DefaultSpacing { get; init; }
    /// <summary>Where this dataset's pixel spacing (for distances in mm) comes from, said by `evaluate`; null = the files.</summary>
    public string? SpacingSource { get; init; }

    public IReadOnlyList<CaseRef> CasesOf(Split split) => split switch
    {
        Split.Val => Val,
        Split.Test => Test,
        _ => Labeled.Concat(Unlabeled).Select(s => s.Case).Where(c => c.LabelPath != null).Distinct().ToList(),
    };

    /// <summary>The same data without validation volumes (pre-training selects nothing on them).</summary>
    public DatasetManifest WithoutValidation() => new()
    {
        Name = Name, NumClasses = NumClasses, ClassNames = ClassNames, Labeled = Labeled, Unlabeled = Unlabeled,
        Val = Array.Empty<CaseRef>(), Test = Test, DefaultSpacing = DefaultSpacing, SpacingSource = SpacingSource,
    };

    public string Summary() =>
        $"{Name}: {Labeled.Count} labeled slices ({Labeled.Select(s => s.Meta.Patient).Distinct().Count()} patients/cases), " +
        $"{Unlabeled.Count} unlabeled slices, {Val.Count} val volumes, {Test.Count} test volumes, {NumClasses} classes";
}
