namespace SemiSeg.Data;

/// <summary>Reads a case (image and, where given, a label) from HDF5, NIfTI, PNG or MetaImage, checking that shapes agree.</summary>
public static class VolumeIO
{
    public static string FormatOf(string path) =>
        Hdf5.IsHdf5Path(path) ? "hdf5" : Nifti.IsNiftiPath(path) ? "nifti" : Png.IsPngPath(path) ? "png" : MetaImage.IsMetaImagePath(path) ? "metaimage"
        : throw new InvalidDataException($"'{path}': unknown file type (expected .h5/.hdf5, .nii/.nii.gz, .png or .mha/.mhd)");

    public static (int D, int H, int W) ReadShape(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"image file '{path}' does not exist", path);
        return FormatOf(path) switch
        {
            "hdf5" => Hdf5.ReadShape(path),
            "nifti" => ((Func<(int, int, int)>)(() => { var h = Nifti.ReadHeader(path); return (h.Nz, h.Ny, h.Nx); }))(),
            "metaimage" => MetaImage.ReadShape(path),
            _ => ((Func<(int, int, int)>)(() => { var (h, w) = Png.ReadShape(path); return (1, h, w); }))(),
        };
    }

    /// <summary>Header-level check of one image or label file without reading its voxels: it opens as its format says
    /// and the sizes its header declares fit in the file (see <see cref="DataCheck"/>).</summary>
    public static void CheckHeader(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"file '{path}' does not exist", path);
        switch (FormatOf(path))
        {
            case "hdf5": Hdf5.CheckSizes(path); break;
            case "nifti": Nifti.CheckHeader(path); break;
            default: ReadShape(path); break;
        }
    }

    /// <summary>
    /// Reads a case. For HDF5 the label is the <c>label</c> dataset of the same file when <paramref name="labelPath"/>
    /// equals <paramref name="imagePath"/>; otherwise the label comes from its own file of any supported format.
    /// </summary>
    public static Volume Read(string imagePath, string? labelPath, string? name = null) => Read(imagePath, labelPath, name, planesAreChannels: false);

    /// <summary>Reads a case as its <see cref="CaseRef"/> describes it (planes as channels where the dataset says so).</summary>
    public static Volume Read(CaseRef c) => Read(c.ImagePath, c.LabelPath, c.Name, c.PlanesAreChannels);

    /// <summary>
    /// <paramref name="planesAreChannels"/>: the image's planes are channels of one 2D image, read as one plane
    /// (<see cref="PlanesToGrey"/>) before the label's shape is checked against it.
    /// </summary>
    public static Volume Read(string imagePath, string? labelPath, string? name, bool planesAreChannels)
    {
        if (!File.Exists(imagePath)) throw new FileNotFoundException($"image file '{imagePath}' does not exist", imagePath);
        var fmt = FormatOf(imagePath);
        bool sameFile = labelPath != null && Path.GetFullPath(labelPath) == Path.GetFullPath(imagePath);
        Volume vol = fmt switch
        {
            "hdf5" => Hdf5.Read(imagePath, withLabel: sameFile, name),
            "nifti" => Nifti.ReadImage(imagePath, name),
            "metaimage" => MetaImage.ReadImage(imagePath, name),
            _ => Png.ReadImage(imagePath, name),
        };
        if (planesAreChannels) vol = PlanesToGrey(vol, imagePath);
        if (labelPath != null && !sameFile)
        {
            var (lab, d, h, w) = ReadLabel(labelPath);
            if ((d, h, w) != (vol.Depth, vol.Height, vol.Width))
                throw new InvalidDataException($"label '{labelPath}' has shape {d}x{h}x{w} but image '{imagePath}' has {vol.Depth}x{vol.Height}x{vol.Width}");
            vol.Label = lab;
        }
        return vol;
    }

    /// <summary>Where a notice about the data goes (once per kind of notice and process); standard error by default.</summary>
    public static Action<string> Notice { get; set; } = m => Console.Error.WriteLine(m);
    static readonly HashSet<string> Noticed = new();

    static void NoticeOnce(string key, string message)
    {
        lock (Noticed) if (!Noticed.Add(key)) return;
        Notice(message);
    }

    /// <summary>
    /// One grey plane from an image whose planes are channels (PSFHS: three planes holding the same grey image). Equal
    /// planes give that plane. Otherwise three (or four: RGBA, alpha ignored) planes are taken as RGB and converted to
    /// luminance 0.299 R + 0.587 G + 0.114 B, said once on <see cref="Notice"/>; any other unequal count is an error.
    /// </summary>
    public static Volume PlanesToGrey(Volume vol, string source)
    {
        if (vol.Depth == 1) return vol;
        int n = vol.SliceSize;
        var img = vol.Image;
        bool equal = true;
        for (int z = 1; z < vol.Depth && equal; z++)
            for (int i = 0; i < n; i++)
                if (img[z * n + i] != img[i]) { equal = false; break; }
        float[] grey;
        if (equal) grey = img.AsSpan(0, n).ToArray();
        else if (vol.Depth is 3 or 4)
        {
            grey = new float[n];
            for (int i = 0; i < n; i++) grey[i] = 0.299f * img[i] + 0.587f * img[n + i] + 0.114f * img[2 * n + i];
            NoticeOnce("luminance", $"note: '{source}' stores {vol.Depth} unequal planes as its channels; read as luminance 0.299 R + 0.587 G + 0.114 B (said once; other such images are read the same way)");
        }
        else throw new InvalidDataException($"image '{source}': {vol.Depth} planes that differ cannot be read as one grey image (expected equal planes, or 3 / 4 colour planes)");
        return new Volume(vol.Name, 1, vol.Height, vol.Width, grey, vol.Label is null ? null : vol.Label.AsSpan(0, n).ToArray())
        {
            Spacing = new[] { 1.0, vol.Spacing[1], vol.Spacing[2] }, SpacingSource = vol.SpacingSource,
        };
    }

    /// <summary>A label map with its shape and, where the file states one (NIfTI sform/qform, MetaImage), its voxel
    /// (i=x, j=y, k=z) to world matrix; null for HDF5, PNG and a NIfTI file with neither code set.</summary>
    public static (byte[] label, int D, int H, int W, double[]? affine) ReadLabelWithAffine(string labelPath)
    {
        if (!File.Exists(labelPath)) throw new FileNotFoundException($"label file '{labelPath}' does not exist", labelPath);
        switch (FormatOf(labelPath))
        {
            case "nifti":
                var lab = Nifti.ReadLabel(labelPath, out var hdr);
                return (lab, hdr.Nz, hdr.Ny, hdr.Nx, Nifti.AffineOf(hdr));
            case "metaimage":
                var (m, d, h, w) = MetaImage.ReadLabel(labelPath, out var affine);
                return (m, d, h, w, affine);
            default:
                var (l, d2, h2, w2) = ReadLabel(labelPath);
                return (l, d2, h2, w2, null);
        }
    }

    /// <summary>Reads a label map (class indices) from NIfTI, PNG or HDF5 (dataset <c>label</c>) with its shape.</summary>
    public static (byte[] label, int D, int H, int W) ReadLabel(string labelPath)
    {
        if (!File.Exists(labelPath)) throw new FileNotFoundException($"label file '{labelPath}' does not exist", labelPath);
        switch (FormatOf(labelPath))
        {
            case "nifti":
                var lab = Nifti.ReadLabel(labelPath, out var hdr);
                return (lab, hdr.Nz, hdr.Ny, hdr.Nx);
            case "metaimage":
                return MetaImage.ReadLabel(labelPath);
            case "png":
                var m = Png.ReadMask(labelPath, out int h, out int w);
                // HC18 annotations are ellipse outlines: the mask is the filled ellipse
                if (Hc18Dataset.IsOutline(labelPath)) m = Hc18Dataset.FillOutline(m, h, w, labelPath);
                return (m, 1, h, w);
            default:
                var lv = Hdf5.Read(labelPath, withLabel: true);
                return (lv.Label!, lv.Depth, lv.Height, lv.Width);
        }
    }
}
