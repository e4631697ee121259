using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace SemiSeg.Data;

/// <summary>
/// NIfTI-1 single-file (.nii, .nii.gz) reader and writer, written against the NIfTI-1 specification
/// (nifti1.h): 348-byte header, "n+1" magic, data at vox_offset, either byte order on read, scl_slope/scl_inter
/// applied to images and label maps (a label must be a whole number after scaling), affine from sform (preferred),
/// then qform (quaternion), then pixdim.
/// Arrays map to (z, y, x) with x fastest, exactly the NIfTI storage order, so no transposition is needed.
/// </summary>
public static class Nifti
{
    public const int HeaderSize = 348;

    public sealed class Header
    {
        public int[] Dim = new int[8];
        public float[] PixDim = new float[8];
        public short DataType;
        public short BitPix;
        public float VoxOffset;
        public float SclSlope;
        public float SclInter;
        public short QformCode, SformCode;
        public float QuaternB, QuaternC, QuaternD, QoffsetX, QoffsetY, QoffsetZ;
        public float[] SrowX = new float[4], SrowY = new float[4], SrowZ = new float[4];
        public bool BigEndian;
        public int Nx => Dim[1];
        public int Ny => Dim[0] >= 2 ? Dim[2] : 1;
        public int Nz => Dim[0] >= 3 ? Dim[3] : 1;
    }

    public static bool IsNiftiPath(string path) =>
        path.EndsWith(".nii", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".nii.gz", StringComparison.OrdinalIgnoreCase);

    static Stream OpenRead(string path)
    {
        Stream s = File.OpenRead(path);
        if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) s = new GZipStream(s, CompressionMode.Decompress);
        return s;
    }

    public static Header ReadHeader(string path) => ParseHeader(ReadHeaderBytes(path), path);

    /// <summary>The header, checked to be readable and to declare no more voxel data than the file can hold.</summary>
    public static Header CheckHeader(string path)
    {
        var h = ReadHeader(path);
        CheckDeclaredSize(path, h);
        return h;
    }

    static byte[] ReadHeaderBytes(string path)
    {
        using var s = OpenRead(path);
        var buf = new byte[HeaderSize];
        int n = 0;
        try { while (n < HeaderSize) { int r = s.Read(buf, n, HeaderSize - n); if (r == 0) break; n += r; } }
        catch (InvalidDataException e) { throw new InvalidDataException($"NIfTI file '{path}': corrupt gzip stream ({e.Message})", e); }
        if (n < HeaderSize) throw new InvalidDataException($"NIfTI file '{path}': file is {n} bytes, shorter than the 348-byte NIfTI-1 header");
        return buf;
    }

    static Header ParseHeader(byte[] b, string path)
    {
        if (b.Length < HeaderSize) throw new InvalidDataException($"NIfTI file '{path}': file is {b.Length} bytes, shorter than the 348-byte NIfTI-1 header");
        var h = new Header();
        int sizeLe = BinaryPrimitives.ReadInt32LittleEndian(b);
        int sizeBe = BinaryPrimitives.ReadInt32BigEndian(b);
        if (sizeLe == HeaderSize) h.BigEndian = false;
        else if (sizeBe == HeaderSize) h.BigEndian = true;
        else throw new InvalidDataException($"NIfTI file '{path}': sizeof_hdr is {sizeLe}, not 348 (not a NIfTI-1 file, or corrupt)");
        string magic = Encoding.ASCII.GetString(b, 344, 3);
        if (magic != "n+1" && magic != "ni1")
            throw new InvalidDataException($"NIfTI file '{path}': magic '{magic.Replace("\0", "\\0")}' is not 'n+1' (not a single-file NIfTI-1 image)");
        if (magic == "ni1") throw new InvalidDataException($"NIfTI file '{path}': two-file (.hdr/.img) NIfTI is not supported; convert it to .nii");
        short I16(int o) => h.BigEndian ? BinaryPrimitives.ReadInt16BigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadInt16LittleEndian(b.AsSpan(o));
        float F32(int o) => h.BigEndian ? BinaryPrimitives.ReadSingleBigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(o));
        for (int i = 0; i < 8; i++) h.Dim[i] = I16(40 + 2 * i);
        h.DataType = I16(70); h.BitPix = I16(72);
        for (int i = 0; i < 8; i++) h.PixDim[i] = F32(76 + 4 * i);
        h.VoxOffset = F32(108); h.SclSlope = F32(112); h.SclInter = F32(116);
        h.QformCode = I16(252); h.SformCode = I16(254);
        h.QuaternB = F32(256); h.QuaternC = F32(260); h.QuaternD = F32(264);
        h.QoffsetX = F32(268); h.QoffsetY = F32(272); h.QoffsetZ = F32(276);
        for (int i = 0; i < 4; i++) { h.SrowX[i] = F32(280 + 4 * i); h.SrowY[i] = F32(296 + 4 * i); h.SrowZ[i] = F32(312 + 4 * i); }
        if (h.Dim[0] < 1 || h.Dim[0] > 7) throw new InvalidDataException($"NIfTI file '{path}': dim[0] = {h.Dim[0]} is outside 1..7");
        for (int i = 1; i <= h.Dim[0]; i++)
            if (h.Dim[i] < 1) throw new InvalidDataException($"NIfTI file '{path}': dim[{i}] = {h.Dim[i]} is not positive");
        for (int i = 4; i <= h.Dim[0]; i++)
            if (h.Dim[i] != 1) throw new InvalidDataException($"NIfTI file '{path}': {h.Dim[0]}-D image (dim[{i}] = {h.Dim[i]}); only 2D and 3D images are supported");
        int bpv = BytesPer(h.DataType, path);
        if (h.BitPix != 8 * bpv)
            throw new InvalidDataException($"NIfTI file '{path}': datatype {h.DataType} has {8 * bpv} bits per voxel but bitpix says {h.BitPix} (corrupt header)");
        if (!float.IsFinite(h.VoxOffset) || h.VoxOffset < 0)
            throw new InvalidDataException($"NIfTI file '{path}': vox_offset {h.VoxOffset} is not a valid data offset (corrupt header)");
        for (int i = 1; i <= Math.Min(h.Dim[0], 3); i++)
            if (!float.IsFinite(h.PixDim[i])) throw new InvalidDataException($"NIfTI file '{path}': pixdim[{i}] (voxel size) is {h.PixDim[i]}");
        if (h.SformCode > 0 && h.SrowX.Concat(h.SrowY).Concat(h.SrowZ).Any(v => !float.IsFinite(v)))
            throw new InvalidDataException($"NIfTI file '{path}': the sform affine holds a non-finite value");
        if (h.QformCode > 0 && new[] { h.QuaternB, h.QuaternC, h.QuaternD, h.QoffsetX, h.QoffsetY, h.QoffsetZ, h.PixDim[0] }.Any(v => !float.IsFinite(v)))
            throw new InvalidDataException($"NIfTI file '{path}': the qform holds a non-finite value");
        return h;
    }

    static int BytesPer(short dataType, string path) => dataType switch
    {
        2 or 256 => 1,
        4 or 512 => 2,
        8 or 16 or 768 => 4,
        64 or 1024 or 1280 => 8,
        _ => throw new InvalidDataException($"NIfTI file '{path}': datatype {dataType} is not supported (supported: uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64)")
    };

    /// <summary>Most voxels one volume may hold: one .NET array (images are float[], labels byte[]).</summary>
    public static long MaxVoxels { get; } = Array.MaxLength;

    /// <summary>Streams the voxel data (no copy of the whole file in memory) to <paramref name="chunk"/> in pieces of
    /// whole voxels with the index of their first voxel. The declared size is checked before anything is
    /// allocated: against the array limit, the file's length (.nii) or what gzip can hold at its best ratio (.nii.gz).</summary>
    static long CheckDeclaredSize(string path, Header h)
    {
        long n = (long)h.Nx * h.Ny * h.Nz;
        int bpv = BytesPer(h.DataType, path);
        long offset = (long)Math.Max(h.VoxOffset, 352f);
        double need = offset + (double)n * bpv;
        long fileLength = new FileInfo(path).Length;
        bool gz = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);
        string Need() => $"{h.Nx}x{h.Ny}x{h.Nz} voxels of {bpv} bytes need {need:0} bytes";
        if (!gz && need > fileLength) throw new InvalidDataException($"NIfTI file '{path}': truncated: {Need()}, file has {fileLength}");
        if (gz && need > (double)fileLength * Hdf5.MaxGzipRatio + (1 << 20))
            throw new InvalidDataException($"NIfTI file '{path}': truncated: {Need()}, more than a {fileLength}-byte gzip file can hold");
        if (n > MaxVoxels)
            throw new InvalidDataException($"NIfTI file '{path}': {h.Nx}x{h.Ny}x{h.Nz} = {n} voxels is more than one volume can hold ({MaxVoxels})");
        return n;
    }

    static void ReadVoxels(string path, Header h, Action<ReadOnlySpan<byte>, long> chunk)
    {
        long n = CheckDeclaredSize(path, h);
        int bpv = BytesPer(h.DataType, path);
        long offset = (long)Math.Max(h.VoxOffset, 352f);
        string Need() => $"{h.Nx}x{h.Ny}x{h.Nz} voxels of {bpv} bytes need {offset + (double)n * bpv:0} bytes";
        using var s = OpenRead(path);
        var buf = new byte[(1 << 20) / bpv * bpv];
        int Read(int at, int count)
        {
            try { return s.Read(buf, at, count); }
            catch (InvalidDataException e) { throw new InvalidDataException($"NIfTI file '{path}': corrupt gzip stream ({e.Message})", e); }
        }
        long pos = 0, voxel = 0;
        while (pos < offset)
        {
            int r = Read(0, (int)Math.Min(buf.Length, offset - pos));
            if (r == 0) break;
            pos += r;
        }
        int fill = 0;
        while (voxel < n && pos >= offset)
        {
            int want = (int)Math.Min(buf.Length, (n - voxel) * bpv);
            int r = Read(fill, want - fill);
            if (r == 0) break;
            fill += r; pos += r;
            int whole = fill / bpv * bpv;
            if (whole == 0) continue;
            chunk(buf.AsSpan(0, whole), voxel);
            voxel += whole / bpv;
            Array.Copy(buf, whole, buf, 0, fill - whole);
            fill -= whole;
        }
        if (voxel < n) throw new InvalidDataException($"NIfTI file '{path}': truncated: {Need()}, file has {pos}");
        // read gzip to its end: only there does it check its CRC-32 and length, which finds flipped bits
        if (s is GZipStream) while (Read(0, buf.Length) > 0) { }
    }

    static double Decode(ReadOnlySpan<byte> p, short dataType, bool be) => dataType switch
    {
        2 => p[0],
        256 => (sbyte)p[0],
        4 => be ? BinaryPrimitives.ReadInt16BigEndian(p) : BinaryPrimitives.ReadInt16LittleEndian(p),
        512 => be ? BinaryPrimitives.ReadUInt16BigEndian(p) : BinaryPrimitives.ReadUInt16LittleEndian(p),
        8 => be ? BinaryPrimitives.ReadInt32BigEndian(p) : BinaryPrimitives.ReadInt32LittleEndian(p),
        768 => be ? BinaryPrimitives.ReadUInt32BigEndian(p) : BinaryPrimitives.ReadUInt32LittleEndian(p),
        16 => be ? BinaryPrimitives.ReadSingleBigEndian(p) : BinaryPrimitives.ReadSingleLittleEndian(p),
        64 => be ? BinaryPrimitives.ReadDoubleBigEndian(p) : BinaryPrimitives.ReadDoubleLittleEndian(p),
        1024 => be ? BinaryPrimitives.ReadInt64BigEndian(p) : BinaryPrimitives.ReadInt64LittleEndian(p),
        _ => be ? BinaryPrimitives.ReadUInt64BigEndian(p) : BinaryPrimitives.ReadUInt64LittleEndian(p),
    };

    /// <summary>Reads an image (scaled by scl_slope/scl_inter) as a Volume with spacing and affine.</summary>
    public static Volume ReadImage(string path, string? name = null)
    {
        var h = ReadHeader(path);
        var (slope, inter) = Scaling(h);
        var img = new float[CheckDeclaredSize(path, h)];
        int bpv = BytesPer(h.DataType, path);
        ReadVoxels(path, h, (bytes, first) =>
        {
            for (int k = 0; k * bpv < bytes.Length; k++)
            {
                double x = Decode(bytes.Slice(k * bpv, bpv), h.DataType, h.BigEndian) * slope + inter;
                if (double.IsNaN(x) || double.IsInfinity(x)) throw new InvalidDataException($"NIfTI file '{path}': voxel {first + k} is {x} (NaN/Inf in image data)");
                img[first + k] = (float)x;
            }
        });
        var vol = new Volume(name ?? StripExtension(Path.GetFileName(path)), h.Nz, h.Ny, h.Nx, img);
        ApplyGeometry(vol, h);
        return vol;
    }

    /// <summary>
    /// scl_slope / scl_inter as the NIfTI-1 standard gives them: the stored value x means slope·x + inter when
    /// scl_slope is non-zero; a zero (or non-finite) slope means no scaling at all, the intercept included (nibabel
    /// reads it the same way).
    /// </summary>
    public static (double slope, double inter) Scaling(Header h) =>
        h.SclSlope == 0 || !float.IsFinite(h.SclSlope) ? (1, 0) : (h.SclSlope, float.IsFinite(h.SclInter) ? h.SclInter : 0);

    /// <summary>How far a scaled label value may lie from a whole number and still be read as that class: the slope
    /// and intercept are float32, so slope·x + inter carries a relative error of ~6e-8 (1/85 · 170 = 2 - 6e-8, the
    /// case of a uint8 mask stored as label·85); for values up to 255 that is below 2e-5, and no probability map or
    /// resampled (interpolated) mask comes that close to integers by chance.</summary>
    public const double LabelTolerance = 1e-4;

    /// <summary>Reads a label map: the stored values scaled by scl_slope/scl_inter (<see cref="Scaling"/>), which must
    /// then be whole numbers in 0..255 (to <see cref="LabelTolerance"/>); anything else is an error naming the voxel.</summary>
    public static byte[] ReadLabel(string path, out Header header)
    {
        var h = ReadHeader(path);
        header = h;
        var (slope, inter) = Scaling(h);
        bool scaled = slope != 1 || inter != 0;
        var lab = new byte[CheckDeclaredSize(path, h)];
        int bpv = BytesPer(h.DataType, path);
        ReadVoxels(path, h, (bytes, first) =>
        {
            for (int k = 0; k * bpv < bytes.Length; k++)
            {
                double stored = Decode(bytes.Slice(k * bpv, bpv), h.DataType, h.BigEndian);
                double x = stored * slope + inter, r = Math.Round(x);
                if (!(r >= 0 && r <= 255 && Math.Abs(x - r) <= LabelTolerance))
                    throw new InvalidDataException($"NIfTI label file '{path}': voxel {first + k} has value {x.ToString(System.Globalization.CultureInfo.InvariantCulture)}" +
                        (scaled ? $" (stored {stored} x scl_slope {slope} + scl_inter {inter})" : "") + "; labels must be integers in 0..255");
                lab[first + k] = (byte)r;
            }
        });
        return lab;
    }

    /// <summary>The voxel (i=x, j=y, k=z) to world matrix the header states: the sform when its code is set, else the
    /// qform, else null (the file states no orientation, only pixdim).</summary>
    public static double[]? AffineOf(Header h)
    {
        var (sz, sy, sx) = SpacingOf(h);
        if (h.SformCode > 0)
            return new double[] { h.SrowX[0], h.SrowX[1], h.SrowX[2], h.SrowX[3], h.SrowY[0], h.SrowY[1], h.SrowY[2], h.SrowY[3], h.SrowZ[0], h.SrowZ[1], h.SrowZ[2], h.SrowZ[3], 0, 0, 0, 1 };
        if (h.QformCode > 0)
            return QuaternToAffine(h.QuaternB, h.QuaternC, h.QuaternD, h.QoffsetX, h.QoffsetY, h.QoffsetZ, sx, sy, sz, h.PixDim[0] < 0 ? -1 : 1);
        return null;
    }

    static (double z, double y, double x) SpacingOf(Header h)
    {
        double sx = Math.Abs(h.PixDim[1]), sy = h.Dim[0] >= 2 ? Math.Abs(h.PixDim[2]) : 1, sz = h.Dim[0] >= 3 ? Math.Abs(h.PixDim[3]) : 1;
        if (sx == 0) sx = 1; if (sy == 0) sy = 1; if (sz == 0) sz = 1;
        return (sz, sy, sx);
    }

    static void ApplyGeometry(Volume vol, Header h)
    {
        var (sz, sy, sx) = SpacingOf(h);
        vol.Spacing = new[] { sz, sy, sx };
        vol.SpacingSource = "NIfTI header (pixdim)";
        vol.Affine = AffineOf(h);
    }

    /// <summary>nifti_quatern_to_mat44 of the specification.</summary>
    public static double[] QuaternToAffine(double b, double c, double d, double qx, double qy, double qz, double dx, double dy, double dz, double qfac)
    {
        double a = 1.0 - (b * b + c * c + d * d);
        if (a < 1e-7) { a = 1.0 / Math.Sqrt(b * b + c * c + d * d); b *= a; c *= a; d *= a; a = 0; }
        else a = Math.Sqrt(a);
        dz *= qfac;
        return new[]
        {
            (a * a + b * b - c * c - d * d) * dx, 2 * (b * c - a * d) * dy, 2 * (b * d + a * c) * dz, qx,
            2 * (b * c + a * d) * dx, (a * a + c * c - b * b - d * d) * dy, 2 * (c * d - a * b) * dz, qy,
            2 * (b * d - a * c) * dx, 2 * (c * d + a * b) * dy, (a * a + d * d - c * c - b * b) * dz, qz,
            0, 0, 0, 1,
        };
    }

    /// <summary>nifti_mat44_to_quatern of the specification (orthogonalised rotation part).</summary>
    public static (double b, double c, double d, double qfac) AffineToQuatern(double[] m)
    {
        double r11 = m[0], r12 = m[1], r13 = m[2], r21 = m[4], r22 = m[5], r23 = m[6], r31 = m[8], r32 = m[9], r33 = m[10];
        double xd = Math.Sqrt(r11 * r11 + r21 * r21 + r31 * r31), yd = Math.Sqrt(r12 * r12 + r22 * r22 + r32 * r32), zd = Math.Sqrt(r13 * r13 + r23 * r23 + r33 * r33);
        if (xd == 0) { r11 = 1; r21 = r31 = 0; xd = 1; }
        if (yd == 0) { r22 = 1; r12 = r32 = 0; yd = 1; }
        if (zd == 0) { r33 = 1; r13 = r23 = 0; zd = 1; }
        r11 /= xd; r21 /= xd; r31 /= xd; r12 /= yd; r22 /= yd; r32 /= yd; r13 /= zd; r23 /= zd; r33 /= zd;
        double det = r11 * r22 * r33 - r11 * r32 * r23 - r21 * r12 * r33 + r21 * r32 * r13 + r31 * r12 * r23 - r31 * r22 * r13;
        double qfac = 1;
        if (det < 0) { qfac = -1; r13 = -r13; r23 = -r23; r33 = -r33; }
        double a = r11 + r22 + r33 + 1, b, c, d;
        if (a > 0.5)
        {
            a = 0.5 * Math.Sqrt(a); b = 0.25 * (r32 - r23) / a; c = 0.25 * (r13 - r31) / a; d = 0.25 * (r21 - r12) / a;
        }
        else
        {
            double xx = 1 + r11 - (r22 + r33), yy = 1 + r22 - (r11 + r33), zz = 1 + r33 - (r11 + r22);
            if (xx > 1) { b = 0.5 * Math.Sqrt(xx); c = 0.25 * (r12 + r21) / b; d = 0.25 * (r13 + r31) / b; a = 0.25 * (r32 - r23) / b; }
            else if (yy > 1) { c = 0.5 * Math.Sqrt(yy); b = 0.25 * (r12 + r21) / c; d = 0.25 * (r23 + r32) / c; a = 0.25 * (r13 - r31) / c; }
            else { d = 0.5 * Math.Sqrt(zz); b = 0.25 * (r13 + r31) / d; c = 0.25 * (r23 + r32) / d; a = 0.25 * (r21 - r12) / d; }
            if (a < 0) { b = -b; c = -c; d = -d; }
        }
        return (b, c, d, qfac);
    }

    static string StripExtension(string file)
    {
        if (file.EndsWith(".nii.gz", StringComparison.OrdinalIgnoreCase)) return file[..^7];
        if (file.EndsWith(".nii", StringComparison.OrdinalIgnoreCase)) return file[..^4];
        return Path.GetFileNameWithoutExtension(file);
    }

    /// <summary>Writes the image as float32 (or the label as uint8 when <paramref name="asLabel"/>), keeping spacing and affine.
    /// The file is written to a temporary name and renamed, so a reader never sees half a file.</summary>
    public static void Write(string path, Volume vol, bool asLabel)
    {
        if (asLabel && vol.Label == null) throw new ArgumentException($"'{vol.Name}' has no label to write");
        short dataType = asLabel ? (short)2 : (short)16;
        short bitpix = asLabel ? (short)8 : (short)32;
        var hdr = new byte[352];
        void I16(int o, short v) => BinaryPrimitives.WriteInt16LittleEndian(hdr.AsSpan(o), v);
        void F32(int o, double v) => BinaryPrimitives.WriteSingleLittleEndian(hdr.AsSpan(o), (float)v);
        BinaryPrimitives.WriteInt32LittleEndian(hdr, HeaderSize);
        hdr[38] = (byte)'r';
        I16(40, 3); I16(42, (short)vol.Width); I16(44, (short)vol.Height); I16(46, (short)vol.Depth);
        for (int i = 4; i < 8; i++) I16(40 + 2 * i, 1);
        I16(70, dataType); I16(72, bitpix);
        var aff = vol.EffectiveAffine();
        var (qb, qc, qd, qfac) = AffineToQuatern(aff);
        F32(76, qfac); F32(80, vol.Spacing[2]); F32(84, vol.Spacing[1]); F32(88, vol.Spacing[0]);
        for (int i = 4; i < 8; i++) F32(76 + 4 * i, 1);
        F32(108, 352); F32(112, 1); F32(116, 0);
        hdr[123] = 2; // xyzt_units: mm
        var desc = Encoding.ASCII.GetBytes("SemiSeg");
        desc.CopyTo(hdr, 148);
        I16(252, 1); I16(254, 1);
        F32(256, qb); F32(260, qc); F32(264, qd); F32(268, aff[3]); F32(272, aff[7]); F32(276, aff[11]);
        for (int i = 0; i < 4; i++) { F32(280 + 4 * i, aff[i]); F32(296 + 4 * i, aff[4 + i]); F32(312 + 4 * i, aff[8 + i]); }
        hdr[344] = (byte)'n'; hdr[345] = (byte)'+'; hdr[346] = (byte)'1'; hdr[347] = 0;
        AtomicFile.Write(path, stream =>
        {
            Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true) : stream;
            s.Write(hdr);
            if (asLabel) s.Write(vol.Label);
            else
            {
                var bytes = new byte[vol.Image.Length * 4];
                for (int i = 0; i < vol.Image.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), vol.Image[i]);
                s.Write(bytes);
            }
            if (!ReferenceEquals(s, stream)) s.Dispose();
        });
    }
}
