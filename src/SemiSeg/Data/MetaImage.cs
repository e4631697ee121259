using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace SemiSeg.Data;

/// <summary>
/// MetaImage (ITK's .mha / .mhd) reading, as the PSFH / FH-PS-AOP challenge distributes its images and masks: a text
/// header of "Key = Value" lines ending with ElementDataFile (LOCAL: the data follows in the same file; otherwise a
/// file name beside the header), raw or zlib-compressed (CompressedData = True), little- or big-endian, with
/// NDims 2 or 3 and optionally several channels per element (averaged into one grey channel for images).
/// </summary>
public static class MetaImage
{
    public static bool IsMetaImagePath(string path) =>
        path.EndsWith(".mha", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".mhd", StringComparison.OrdinalIgnoreCase);

    sealed record Header(int[] Dims, int Channels, string Type, bool Msb, bool Compressed, double[] Spacing, string DataFile, long DataOffset)
    {
        /// <summary>Offset (Origin, Position): the world position of the first voxel, in ITK's LPS frame.</summary>
        public double[] Offset { get; init; } = new double[Dims.Length];
        /// <summary>TransformMatrix (Rotation, Orientation): NDims direction cosines per voxel axis, axis after axis
        /// (as ITK's MetaImageIO reads them into the columns of its direction matrix).</summary>
        public double[] Directions { get; init; } = Identity(Dims.Length);
    }

    static double[] Identity(int n) { var m = new double[n * n]; for (int i = 0; i < n; i++) m[i * n + i] = 1; return m; }

    static Header ReadHeader(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"MetaImage file '{path}' does not exist", path);
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        using var fs = File.OpenRead(path);
        var line = new StringBuilder();
        long offset = 0;
        while (true)
        {
            int b = fs.ReadByte();
            if (b < 0) throw new InvalidDataException($"MetaImage file '{path}': the header has no ElementDataFile line");
            offset++;
            if (b != '\n') { if (b != '\r') line.Append((char)b); if (line.Length > 4096) throw new InvalidDataException($"MetaImage file '{path}': not a MetaImage header"); continue; }
            var text = line.ToString(); line.Clear();
            if (text.Any(c => c < ' ' && c != '\t' || c == (char)127))
                throw new InvalidDataException($"MetaImage file '{path}': header line {fields.Count + 1} is not text (not a MetaImage file, or corrupt)");
            int eq = text.IndexOf('=');
            if (eq <= 0) { if (text.Trim().Length == 0) continue; throw new InvalidDataException($"MetaImage file '{path}': header line '{text}' is not 'Key = Value'"); }
            var key = text[..eq].Trim(); var value = text[(eq + 1)..].Trim();
            fields[key] = value;
            if (key.Equals("ElementDataFile", StringComparison.OrdinalIgnoreCase)) break;
        }
        string Need(string k) => fields.TryGetValue(k, out var v) ? v : throw new InvalidDataException($"MetaImage file '{path}': header has no {k}");
        int Int(string key, string text) => int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) ? v
            : throw new InvalidDataException($"MetaImage file '{path}': {key} '{fields[key]}' is not a whole number{(long.TryParse(text, out _) ? " of int range" : "")}");
        int nd = Int("NDims", Need("NDims"));
        var dims = Need("DimSize").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => Int("DimSize", v)).ToArray();
        if (nd < 2 || nd > 3 || dims.Length != nd || dims.Any(d => d <= 0))
            throw new InvalidDataException($"MetaImage file '{path}': NDims {nd} / DimSize '{fields["DimSize"]}' is not a 2D or 3D image");
        int channels = fields.TryGetValue("ElementNumberOfChannels", out var ch) ? Int("ElementNumberOfChannels", ch) : 1;
        if (channels < 1) throw new InvalidDataException($"MetaImage file '{path}': ElementNumberOfChannels {channels} is not positive");
        bool msb = (fields.TryGetValue("ElementByteOrderMSB", out var m1) || fields.TryGetValue("BinaryDataByteOrderMSB", out m1)) && m1.Equals("True", StringComparison.OrdinalIgnoreCase);
        bool compressed = fields.TryGetValue("CompressedData", out var c) && c.Equals("True", StringComparison.OrdinalIgnoreCase);
        // NumberStyles.Float: no thousands separator, so '1,0' (a decimal comma) is refused rather than read as 10
        var spacing = fields.TryGetValue("ElementSpacing", out var sp) || fields.TryGetValue("ElementSize", out sp)
            ? sp.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x) && x > 0 ? x
                : throw new InvalidDataException($"MetaImage file '{path}': spacing '{sp}' is not {nd} positive numbers (with '.' as the decimal point)")).ToArray()
            : Enumerable.Repeat(1.0, nd).ToArray();
        if (spacing.Length != nd) throw new InvalidDataException($"MetaImage file '{path}': spacing '{sp}' is not {nd} positive numbers (with '.' as the decimal point)");
        var dataFile = Need("ElementDataFile");
        if (!dataFile.Equals("LOCAL", StringComparison.OrdinalIgnoreCase))
        {
            dataFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, dataFile);
            offset = 0;
        }
        else dataFile = path;
        double[]? Numbers(string what, int count, params string[] keys)
        {
            foreach (var k in keys)
                if (fields.TryGetValue(k, out var text))
                {
                    var v = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(t => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x) ? x
                        : throw new InvalidDataException($"MetaImage file '{path}': {k} '{text}' is not {count} numbers (with '.' as the decimal point)")).ToArray();
                    if (v.Length != count) throw new InvalidDataException($"MetaImage file '{path}': {k} '{text}' has {v.Length} values, {what} needs {count}");
                    return v;
                }
            return null;
        }
        var origin = Numbers("the origin", nd, "Offset", "Origin", "Position") ?? new double[nd];
        var directions = Numbers("the direction matrix", nd * nd, "TransformMatrix", "Rotation", "Orientation") ?? Identity(nd);
        for (int a = 0; a < nd; a++)
        {
            double norm = Math.Sqrt(Enumerable.Range(0, nd).Sum(r => directions[a * nd + r] * directions[a * nd + r]));
            if (norm < 1e-6) throw new InvalidDataException($"MetaImage file '{path}': TransformMatrix has a zero direction for axis {a}");
        }
        return new Header(dims, channels, Need("ElementType"), msb, compressed, spacing, dataFile, offset) { Offset = origin, Directions = directions };
    }

    static double[] ReadValues(string path, Header h)
    {
        long count = h.Dims.Aggregate(1L, (a, d) => a * d) * h.Channels; // at most 3 int dims: fits a long only while checked below
        if ((double)h.Dims.Aggregate(1.0, (a, d) => a * d) * h.Channels > Array.MaxLength)
            throw new InvalidDataException($"MetaImage file '{path}': DimSize {string.Join("x", h.Dims)} x {h.Channels} channel(s) is more than one image can hold ({Array.MaxLength} values)");
        int size = h.Type switch
        {
            "MET_UCHAR" or "MET_CHAR" => 1,
            "MET_USHORT" or "MET_SHORT" => 2,
            "MET_UINT" or "MET_INT" or "MET_FLOAT" => 4,
            "MET_DOUBLE" or "MET_LONG" or "MET_ULONG" => 8,
            _ => throw new InvalidDataException($"MetaImage file '{path}': element type {h.Type} is not supported"),
        };
        if (!File.Exists(h.DataFile)) throw new FileNotFoundException($"MetaImage file '{path}': its data file '{h.DataFile}' does not exist", h.DataFile);
        using var fs = File.OpenRead(h.DataFile);
        long available = fs.Length - h.DataOffset;
        if (!h.Compressed && available < count * size)
            throw new InvalidDataException($"MetaImage file '{path}': data ends after {Math.Max(0, available)} of {count * size} bytes");
        if (h.Compressed && count * size > available * Hdf5.MaxGzipRatio + (1 << 20))
            throw new InvalidDataException($"MetaImage file '{path}': {count * size} bytes declared, more than {available} compressed bytes can hold");
        fs.Position = h.DataOffset;
        Stream src = h.Compressed ? new ZLibStream(fs, CompressionMode.Decompress) : fs;
        var raw = new byte[count * size];
        int read = 0;
        try
        {
            while (read < raw.Length) { int n = src.Read(raw, read, raw.Length - read); if (n == 0) break; read += n; }
            // zlib checks its Adler-32 only at the stream's end: read to it, so flipped bits are found
            if (h.Compressed && read == raw.Length) { var rest = new byte[4096]; while (src.Read(rest) > 0) { } }
        }
        catch (InvalidDataException e) { throw new InvalidDataException($"MetaImage file '{path}': compressed data is corrupt ({e.Message})", e); }
        if (read < raw.Length) throw new InvalidDataException($"MetaImage file '{path}': data ends after {read} of {raw.Length} bytes");
        if (h.Msb != !BitConverter.IsLittleEndian && size > 1)
            for (long i = 0; i < count; i++) Array.Reverse(raw, (int)(i * size), size);
        var v = new double[count];
        for (long i = 0; i < count; i++)
        {
            int o = (int)(i * size);
            v[i] = h.Type switch
            {
                "MET_UCHAR" => raw[o],
                "MET_CHAR" => (sbyte)raw[o],
                "MET_USHORT" => BitConverter.ToUInt16(raw, o),
                "MET_SHORT" => BitConverter.ToInt16(raw, o),
                "MET_UINT" => BitConverter.ToUInt32(raw, o),
                "MET_INT" => BitConverter.ToInt32(raw, o),
                "MET_FLOAT" => BitConverter.ToSingle(raw, o),
                "MET_LONG" => BitConverter.ToInt64(raw, o),
                "MET_ULONG" => BitConverter.ToUInt64(raw, o),
                _ => BitConverter.ToDouble(raw, o),
            };
        }
        return v;
    }

    static (int d, int h, int w) Shape(Header h) => h.Dims.Length == 2 ? (1, h.Dims[1], h.Dims[0]) : (h.Dims[2], h.Dims[1], h.Dims[0]);

    public static (int D, int H, int W) ReadShape(string path) => Shape(ReadHeader(path));

    /// <summary>An image, channels averaged, min–max scaled to [0, 1] when its range exceeds it (8-bit ultrasound).</summary>
    public static Volume ReadImage(string path, string? name = null)
    {
        var h = ReadHeader(path);
        var v = ReadValues(path, h);
        for (long i = 0; i < v.Length; i++)
            if (!double.IsFinite(v[i])) throw new InvalidDataException($"MetaImage file '{path}': voxel {i / h.Channels} is {v[i]} (NaN/Inf in image data)");
        var (d, hh, w) = Shape(h);
        var img = new float[(long)d * hh * w];
        for (long i = 0; i < img.Length; i++)
        {
            double s = 0;
            for (int c = 0; c < h.Channels; c++) s += v[i * h.Channels + c];
            img[i] = (float)(s / h.Channels);
        }
        float max = img.Max();
        if (max > 1) for (int i = 0; i < img.Length; i++) img[i] /= 255f > max ? 255f : max;
        var vol = new Volume(name ?? Path.GetFileNameWithoutExtension(path), d, hh, w, img)
        {
            Spacing = h.Spacing.Length == 2 ? new[] { 1.0, h.Spacing[1], h.Spacing[0] } : new[] { h.Spacing[2], h.Spacing[1], h.Spacing[0] },
            Affine = Affine(h),
            SpacingSource = "MetaImage header (ElementSpacing; 1 where absent, as ITK reads it)",
        };
        return vol;
    }

    /// <summary>A label map; values must be whole numbers in 0..255.</summary>
    public static (byte[] label, int D, int H, int W) ReadLabel(string path) => ReadLabel(path, out _);

    /// <summary>A label map with the voxel-to-world matrix its header states (RAS, as <see cref="Volume.Affine"/>).</summary>
    public static (byte[] label, int D, int H, int W) ReadLabel(string path, out double[] affine)
    {
        var h = ReadHeader(path);
        affine = Affine(h);
        if (h.Channels != 1) throw new InvalidDataException($"MetaImage label '{path}': has {h.Channels} channels, a label map needs 1");
        var v = ReadValues(path, h);
        var lab = new byte[v.Length];
        for (int i = 0; i < v.Length; i++)
        {
            if (v[i] < 0 || v[i] > 255 || v[i] != Math.Floor(v[i])) throw new InvalidDataException($"MetaImage label '{path}': value {v[i]} is not a class index");
            lab[i] = (byte)v[i];
        }
        var (d, hh, w) = Shape(h);
        return (lab, d, hh, w);
    }

    /// <summary>
    /// The voxel (i=x, j=y, k=z) to world matrix in the RAS frame of <see cref="Volume.Affine"/> (NIfTI's): ITK's LPS
    /// world is RAS with x and y negated, so the first two rows flip. World = Offset + Σ_axis direction·spacing·index.
    /// A 2D image's third axis is the unit normal (z).
    /// </summary>
    static double[] Affine(Header h)
    {
        int n = h.Dims.Length;
        var a = new double[16];
        for (int axis = 0; axis < 3; axis++)
            for (int r = 0; r < 3; r++)
                a[r * 4 + axis] = axis < n && r < n ? h.Directions[axis * n + r] * h.Spacing[axis] : (axis == r ? 1 : 0);
        for (int r = 0; r < 3; r++) a[r * 4 + 3] = r < n ? h.Offset[r] : 0;
        for (int c = 0; c < 4; c++) { a[c] = -a[c]; a[4 + c] = -a[4 + c]; }
        a[15] = 1;
        return a;
    }

    /// <summary>Header lines for a volume's geometry: ElementSpacing, Offset and TransformMatrix from its RAS affine
    /// (LPS in the file, as ITK writes it).</summary>
    static string GeometryLines(Volume geometry, int nd)
    {
        var a = (double[])geometry.EffectiveAffine().Clone();
        for (int c = 0; c < 4; c++) { a[c] = -a[c]; a[4 + c] = -a[4 + c]; } // RAS -> LPS
        var spacing = new double[nd]; var dirs = new double[nd * nd]; var offset = new double[nd];
        for (int axis = 0; axis < nd; axis++)
        {
            double norm = Math.Sqrt(Enumerable.Range(0, 3).Sum(r => a[r * 4 + axis] * a[r * 4 + axis]));
            spacing[axis] = norm > 0 ? norm : 1;
            for (int r = 0; r < nd; r++) dirs[axis * nd + r] = norm > 0 ? a[r * 4 + axis] / norm : (axis == r ? 1 : 0);
            offset[axis] = a[axis * 4 + 3];
        }
        static string J(IEnumerable<double> v) => string.Join(" ", v.Select(x => x.ToString("R", CultureInfo.InvariantCulture)));
        return $"Offset = {J(offset)}\nTransformMatrix = {J(dirs)}\nElementSpacing = {J(spacing)}\n";
    }

    /// <summary>Writes a 2D/3D single-channel MET_UCHAR or MET_FLOAT MetaImage with local data, atomically; with
    /// <paramref name="geometry"/>, its spacing, origin and orientation too.</summary>
    public static void Write(string path, int depth, int height, int width, byte[]? bytes = null, float[]? floats = null, bool compress = false, Volume? geometry = null)
    {
        var dims = depth == 1 ? $"{width} {height}" : $"{width} {height} {depth}";
        var body = bytes ?? floats!.SelectMany(BitConverter.GetBytes).ToArray();
        if (compress)
        {
            using var ms = new MemoryStream();
            using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true)) z.Write(body);
            body = ms.ToArray();
        }
        var header = $"ObjectType = Image\nNDims = {(depth == 1 ? 2 : 3)}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n" +
                     (compress ? $"CompressedData = True\nCompressedDataSize = {body.Length}\n" : "CompressedData = False\n") +
                     (geometry is null ? "" : GeometryLines(geometry, depth == 1 ? 2 : 3)) +
                     $"DimSize = {dims}\nElementType = {(bytes != null ? "MET_UCHAR" : "MET_FLOAT")}\nElementDataFile = LOCAL\n";
        AtomicFile.Write(path, s => { s.Write(Encoding.ASCII.GetBytes(header)); s.Write(body); });
    }
}
