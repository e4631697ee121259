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
    public static Volume Read(string imagePath, string? labelPath, string? name = null)
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
        if (labelPath != null && !sameFile)
        {
            var (lab, d, h, w) = ReadLabel(labelPath);
            if ((d, h, w) != (vol.Depth, vol.Height, vol.Width))
                throw new InvalidDataException($"label '{labelPath}' has shape {d}x{h}x{w} but image '{imagePath}' has {vol.Depth}x{vol.Height}x{vol.Width}");
            vol.Label = lab;
        }
        return vol;
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
