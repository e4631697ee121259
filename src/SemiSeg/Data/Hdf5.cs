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

    /// <summary>Opens the file and checks every dataset the SemiSeg layout reads (image, and label where present)
    /// against the file's length, without reading voxels.</summary>
    public static void CheckSizes(string path)
    {
        Guard(path, () =>
        {
            using var f = H5File.OpenRead(path);
            ShapeOf(f, "image", path);
            CheckSize(f.Dataset("image"), path, "image");
            if (f.LinkExists("label")) { ShapeOf(f, "label", path); CheckSize(f.Dataset("label"), path, "label"); }
            return 0;
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

    /// <summary>Largest dataset read: a .NET array's element limit, and what a file of this length can hold even
    /// at gzip's best ratio (about 1032:1), so a small file declaring a huge (e.g. unwritten, chunked) dataset is
    /// refused before anything is allocated.</summary>
    internal const long MaxGzipRatio = 1100;

    static void CheckSize(IH5Dataset ds, string path, string key)
    {
        var dims = ds.Space.Dimensions;
        ulong n = 1;
        foreach (var d in dims) n = d == 0 ? 0 : n > ulong.MaxValue / d ? ulong.MaxValue : n * d;
        long fileLength = new FileInfo(path).Length;
        ulong bytes = n > ulong.MaxValue / (ulong)Math.Max(1, ds.Type.Size) ? ulong.MaxValue : n * (ulong)Math.Max(1, ds.Type.Size);
        string shape = string.Join("x", dims);
        if (n > (ulong)Array.MaxLength)
            throw new InvalidDataException($"HDF5 file '{path}': dataset '{key}' declares {shape} = {n} elements, more than one array can hold ({Array.MaxLength})");
        if (bytes > (ulong)fileLength * MaxGzipRatio + (1 << 20))
            throw new InvalidDataException($"HDF5 file '{path}': dataset '{key}' declares {shape} elements of {ds.Type.Size} bytes ({bytes} bytes), " +
                                           $"more than a {fileLength}-byte file can hold even compressed (unwritten or corrupt dataset)");
    }

    static TOut[] Map<TIn, TOut>(TIn[] a, Func<TIn, TOut> f)
    {
        var r = new TOut[a.Length];
        for (int i = 0; i < a.Length; i++) r[i] = f(a[i]);
        return r;
    }

    /// <summary>Every integer type with its bit depth and signedness (uint16 above 32767 stays positive), and
    /// float32/64, converted element by element.</summary>
    static TOut[] ReadAs<TOut>(IH5Dataset ds, string path, string key, Func<double, TOut> f)
    {
        var t = ds.Type;
        CheckSize(ds, path, key);
        bool signed = t.Class == H5DataTypeClass.FixedPoint && t.FixedPoint.IsSigned;
        return (t.Class, t.Size, signed) switch
        {
            (H5DataTypeClass.FloatingPoint, 4, _) => Map(ds.Read<float[]>(), x => f(x)),
            (H5DataTypeClass.FloatingPoint, 8, _) => Map(ds.Read<double[]>(), f),
            (H5DataTypeClass.FixedPoint, 1, true) => Map(ds.Read<sbyte[]>(), x => f(x)),
            (H5DataTypeClass.FixedPoint, 1, false) => Map(ds.Read<byte[]>(), x => f(x)),
            (H5DataTypeClass.FixedPoint, 2, true) => Map(ds.Read<short[]>(), x => f(x)),
            (H5DataTypeClass.FixedPoint, 2, false) => Map(ds.Read<ushort[]>(), x => f(x)),
            (H5DataTypeClass.FixedPoint, 4, true) => Map(ds.Read<int[]>(), x => f(x)),
            (H5DataTypeClass.FixedPoint, 4, false) => Map(ds.Read<uint[]>(), x => f(x)),
            (H5DataTypeClass.FixedPoint, 8, true) => Map(ds.Read<long[]>(), x => f(x)),
            (H5DataTypeClass.FixedPoint, 8, false) => Map(ds.Read<ulong[]>(), x => f(x)),
            _ => throw new InvalidDataException($"HDF5 file '{path}': dataset '{key}' has unsupported type {t.Class}/{t.Size} bytes"),
        };
    }

    static float[] ReadFloat(IH5Dataset ds, string path, string key)
    {
        if (ds.Type is { Class: H5DataTypeClass.FloatingPoint, Size: 4 }) { CheckSize(ds, path, key); return ds.Read<float[]>(); }
        return ReadAs(ds, path, key, x => (float)x);
    }

    static byte[] ReadLabel(IH5Dataset ds, string path, string key)
    {
        if (ds.Type is { Class: H5DataTypeClass.FixedPoint, Size: 1 } t && !t.FixedPoint.IsSigned) { CheckSize(ds, path, key); return ds.Read<byte[]>(); }
        var values = ReadAs(ds, path, key, x => x);
        var lab = new byte[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            double v = values[i];
            if (!(v >= 0 && v <= 255 && v == Math.Floor(v))) throw new InvalidDataException($"HDF5 file '{path}': '{key}' value {v} at index {i} is not an integer in 0..255");
            lab[i] = (byte)v;
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
