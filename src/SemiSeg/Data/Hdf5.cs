using PureHDF;

namespace SemiSeg.Data;

/// <summary>
/// HDF5 in the SSL4MIS / UA-MT layout: dataset <c>image</c> (float32; 2D (H, W) or 3D (D, H, W)) and, when labeled,
/// dataset <c>label</c> (integer, same shape). Gzip-compressed chunks are handled by PureHDF.
/// </summary>
public static class Hdf5
{
    public static bool IsHdf5Path(string path) =>
        path.EndsWith(".h5", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".hdf5", StringComparison.OrdinalIgnoreCase);

    /// <summary>Shape (D, H, W) of the image dataset without reading it.</summary>
    public static (int D, int H, int W) ReadShape(string path, string imageKey = "image")
    {
        return Guard(path, () =>
        {
            using var f = H5File.OpenRead(path);
            return ShapeOf(f, imageKey, path);
        });
    }

    static (int, int, int) ShapeOf(IH5Group f, string key, string path)
    {
        if (!f.LinkExists(key)) throw new InvalidDataException($"HDF5 file '{path}': no dataset '{key}' (found: {string.Join(", ", f.Children().Select(c => c.Name))})");
        var dims = f.Dataset(key).Space.Dimensions;
        return dims.Length switch
        {
            2 => (1, checked((int)dims[0]), checked((int)dims[1])),
            3 => (checked((int)dims[0]), checked((int)dims[1]), checked((int)dims[2])),
            _ => throw new InvalidDataException($"HDF5 file '{path}': dataset '{key}' has {dims.Length} dimensions; expected 2 (H, W) or 3 (D, H, W)"),
        };
    }

    /// <summary>Reads image and (when <paramref name="withLabel"/>) label.</summary>
    public static Volume Read(string path, bool withLabel, string? name = null, string imageKey = "image", string labelKey = "label")
    {
        return Guard(path, () =>
        {
            using var f = H5File.OpenRead(path);
            var (d, h, w) = ShapeOf(f, imageKey, path);
            var image = ReadFloat(f.Dataset(imageKey), path, imageKey);
            for (int i = 0; i < image.Length; i++)
                if (!float.IsFinite(image[i])) throw new InvalidDataException($"HDF5 file '{path}': '{imageKey}' holds a non-finite value ({image[i]}) at index {i}");
            byte[]? label = null;
            if (withLabel)
            {
                if (!f.LinkExists(labelKey)) throw new InvalidDataException($"HDF5 file '{path}': no dataset '{labelKey}' for a labeled case");
                var ls = ShapeOf(f, labelKey, path);
                if (ls != (d, h, w)) throw new InvalidDataException($"HDF5 file '{path}': image shape {d}x{h}x{w} and label shape {ls.Item1}x{ls.Item2}x{ls.Item3} differ");
                label = ReadLabel(f.Dataset(labelKey), path, labelKey);
            }
            return new Volume(name ?? Path.GetFileNameWithoutExtension(path), d, h, w, image, label);
        });
    }

    static float[] ReadFloat(IH5Dataset ds, string path, string key)
    {
        var t = ds.Type;
        return (t.Class, t.Size) switch
        {
            (H5DataTypeClass.FloatingPoint, 4) => ds.Read<float[]>(),
            (H5DataTypeClass.FloatingPoint, 8) => ds.Read<double[]>().Select(x => (float)x).ToArray(),
            (H5DataTypeClass.FixedPoint, 1) => ds.Read<byte[]>().Select(x => (float)x).ToArray(),
            (H5DataTypeClass.FixedPoint, 2) => ds.Read<short[]>().Select(x => (float)x).ToArray(),
            (H5DataTypeClass.FixedPoint, 4) => ds.Read<int[]>().Select(x => (float)x).ToArray(),
            _ => throw new InvalidDataException($"HDF5 file '{path}': dataset '{key}' has unsupported type {t.Class}/{t.Size} bytes"),
        };
    }

    static byte[] ReadLabel(IH5Dataset ds, string path, string key)
    {
        var t = ds.Type;
        long[] values = (t.Class, t.Size) switch
        {
            (H5DataTypeClass.FixedPoint, 1) => null!,
            (H5DataTypeClass.FixedPoint, 2) => ds.Read<short[]>().Select(x => (long)x).ToArray(),
            (H5DataTypeClass.FixedPoint, 4) => ds.Read<int[]>().Select(x => (long)x).ToArray(),
            (H5DataTypeClass.FixedPoint, 8) => ds.Read<long[]>(),
            (H5DataTypeClass.FloatingPoint, 4) => ds.Read<float[]>().Select(x => x == MathF.Floor(x) ? (long)x : -1).ToArray(),
            (H5DataTypeClass.FloatingPoint, 8) => ds.Read<double[]>().Select(x => x == Math.Floor(x) ? (long)x : -1).ToArray(),
            _ => throw new InvalidDataException($"HDF5 file '{path}': dataset '{key}' has unsupported type {t.Class}/{t.Size} bytes"),
        };
        if (values == null) return ds.Read<byte[]>();
        var lab = new byte[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] < 0 || values[i] > 255) throw new InvalidDataException($"HDF5 file '{path}': '{key}' value at index {i} is not an integer in 0..255");
            lab[i] = (byte)values[i];
        }
        return lab;
    }

    /// <summary>Writes a volume in the SSL4MIS layout (2D datasets when Depth = 1 and <paramref name="as2D"/>), atomically.</summary>
    public static void Write(string path, Volume vol, bool as2D = false)
    {
        var file = new H5File();
        if (as2D && vol.Depth == 1)
        {
            file["image"] = To2D(vol.Image, vol.Height, vol.Width);
            if (vol.Label != null) file["label"] = To2D(vol.Label, vol.Height, vol.Width);
        }
        else
        {
            file["image"] = To3D(vol.Image, vol.Depth, vol.Height, vol.Width);
            if (vol.Label != null) file["label"] = To3D(vol.Label, vol.Depth, vol.Height, vol.Width);
        }
        AtomicFile.Write(path, s => file.Write(s));
    }

    static T[,] To2D<T>(T[] a, int h, int w)
    {
        var r = new T[h, w];
        Buffer.BlockCopy(a, 0, r, 0, System.Runtime.InteropServices.Marshal.SizeOf<T>() * a.Length);
        return r;
    }

    static T[,,] To3D<T>(T[] a, int d, int h, int w)
    {
        var r = new T[d, h, w];
        Buffer.BlockCopy(a, 0, r, 0, System.Runtime.InteropServices.Marshal.SizeOf<T>() * a.Length);
        return r;
    }

    static T Guard<T>(string path, Func<T> f)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"HDF5 file '{path}' does not exist", path);
        try { return f(); }
        catch (InvalidDataException) { throw; }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"HDF5 file '{path}': cannot be read as HDF5 ({e.GetType().Name}: {e.Message})", e);
        }
    }
}
