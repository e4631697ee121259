namespace SemiSeg.Data;

/// <summary>
/// A scan held in memory as a (Depth, Height, Width) array, x fastest: a 3D volume, or a 2D image with Depth = 1.
/// Spacing is (z, y, x) in mm; Affine is the 4x4 voxel-to-world matrix (NIfTI sform/qform), identity-scaled by
/// spacing when the source has none. Label is null for an unlabeled scan.
/// </summary>
public sealed class Volume
{
    public Volume(string name, int depth, int height, int width, float[] image, byte[]? label = null)
    {
        if (depth <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"'{name}': invalid shape {depth}x{height}x{width}");
        if (image.Length != (long)depth * height * width)
            throw new ArgumentException($"'{name}': image has {image.Length} values, shape {depth}x{height}x{width} needs {(long)depth * height * width}");
        if (label != null && label.Length != image.Length)
            throw new ArgumentException($"'{name}': label has {label.Length} values, image has {image.Length}");
        Name = name; Depth = depth; Height = height; Width = width; Image = image; Label = label;
        Spacing = new[] { 1.0, 1.0, 1.0 };
    }

    public string Name { get; }
    public int Depth { get; }
    public int Height { get; }
    public int Width { get; }
    public float[] Image { get; }
    public byte[]? Label { get; set; }
    /// <summary>(z, y, x) voxel size in mm.</summary>
    public double[] Spacing { get; set; }
    /// <summary>Where <see cref="Spacing"/> came from ("NIfTI header (pixdim)", "MetaImage header (ElementSpacing)");
    /// null when the file states no voxel size (HDF5, PNG) and Spacing is only the 1 mm placeholder.</summary>
    public string? SpacingSource { get; set; }
    /// <summary>Row-major 4x4 voxel (i=x, j=y, k=z) to world matrix; null means "diagonal of spacing".</summary>
    public double[]? Affine { get; set; }
    public int SliceSize => Height * Width;

    public float[] SliceImage(int z) => Image.AsSpan(z * SliceSize, SliceSize).ToArray();
    public byte[]? SliceLabel(int z) => Label?.AsSpan(z * SliceSize, SliceSize).ToArray();

    public double[] EffectiveAffine()
    {
        if (Affine != null) return Affine;
        return new[] { Spacing[2], 0, 0, 0, 0, Spacing[1], 0, 0, 0, 0, Spacing[0], 0, 0, 0, 0, 1.0 };
    }

    /// <summary>Throws a clear error when a label value is outside [0, numClasses).</summary>
    public void ValidateLabel(int numClasses, string source)
    {
        if (Label == null) return;
        byte max = 0;
        foreach (var v in Label) if (v > max) max = v;
        if (max >= numClasses)
            throw new InvalidDataException($"{source}: label value {max} is out of range for {numClasses} classes (expected 0..{numClasses - 1})");
    }
}
