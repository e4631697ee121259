using System.Buffers.Binary;
using System.Reflection;
using StbImageSharp;
using StbImageWriteSharp;

namespace SemiSeg.Data;

/// <summary>PNG images and masks through StbImageSharp / StbImageWriteSharp (pure C#). Images are read as grey
/// levels scaled to [0, 1] (8-bit by 255, 16-bit by 65535); masks keep their integer values as class indices at
/// their own bit depth (16-bit masks are not reduced to 8 bits), paletted masks give their palette indices, and a
/// colour mask is accepted only when every pixel is grey (R = G = B).</summary>
public static class Png
{
    public static bool IsPngPath(string path) => path.EndsWith(".png", StringComparison.OrdinalIgnoreCase);

    static readonly byte[] Signature = { 137, 80, 78, 71, 13, 10, 26, 10 };

    /// <summary>The decoded pixels: 8- or 16-bit samples widened to int, <see cref="Channels"/> per pixel.</summary>
    sealed record Decoded(int Width, int Height, int Channels, int BitDepth, int[] Samples);

    static byte[] ReadBytes(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"PNG file '{path}' does not exist", path);
        return File.ReadAllBytes(path);
    }

    static InvalidDataException Corrupt(string path, string reason, Exception? inner = null)
    {
        // stb's reason can be a buffer of NULs for a cut file: keep printable text only
        var clean = new string(reason.Where(c => !char.IsControl(c)).ToArray()).Trim();
        return new InvalidDataException($"PNG file '{path}': cannot be decoded ({(clean.Length == 0 ? "truncated or corrupt data" : clean)})", inner);
    }

    /// <summary>IHDR's bit depth and colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), or (0, -1) when the
    /// file does not start like a PNG (stb then says why).</summary>
    static (int BitDepth, int ColorType) Ihdr(byte[] b) =>
        b.Length >= 33 && b.AsSpan(0, 8).SequenceEqual(Signature) && b[12] == 'I' && b[13] == 'H' && b[14] == 'D' && b[15] == 'R'
            ? (b[24], b[25]) : (0, -1);

    /// <summary>Walks the chunks and checks each one's CRC-32 (stb skips them, so a flipped bit in the compressed
    /// pixels would decode to other pixels silently). Returns nothing; the layout errors are stb's to report.</summary>
    static void CheckChunkCrcs(string path, byte[] b)
    {
        if (Ihdr(b).ColorType < 0) return;
        for (long pos = 8; pos + 12 <= b.Length;)
        {
            long len = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan((int)pos));
            if (pos + 12 + len > b.Length) return; // cut inside a chunk: stb says "truncated" or similar
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan((int)(pos + 8 + len)));
            if (System.IO.Hashing.Crc32.HashToUInt32(b.AsSpan((int)pos + 4, (int)len + 4)) != stored)
                throw new InvalidDataException($"PNG file '{path}': chunk '{System.Text.Encoding.Latin1.GetString(b, (int)pos + 4, 4).Replace('\0', '?')}' at byte {pos} fails its CRC check (corrupt file)");
            if (b.AsSpan((int)pos + 4, 4).SequenceEqual("IEND"u8)) return;
            pos += 12 + len;
        }
    }

    static Decoded Decode(string path, byte[] bytes, bool keepPaletteIndices)
    {
        CheckChunkCrcs(path, bytes);
        var (depth, colorType) = Ihdr(bytes);
        try
        {
            if (depth == 16) return Decode16(bytes);
            var r = ImageResult.FromMemory(bytes, colorType == 3 && keepPaletteIndices ? StbImageSharp.ColorComponents.RedGreenBlueAlpha : StbImageSharp.ColorComponents.Default);
            int ch = r.Data.Length / Math.Max(1, r.Width * r.Height);
            var s = new int[r.Data.Length];
            for (int i = 0; i < s.Length; i++) s[i] = r.Data[i];
            return new Decoded(r.Width, r.Height, ch, 8, s);
        }
        catch (Exception e) when (e is not InvalidDataException and not OutOfMemoryException)
        {
            throw Corrupt(path, e.Message, e);
        }
    }

    unsafe delegate void FreeFn(void* p);

    /// <summary>stb's allocator is internal to StbImageSharp; its own free releases what stbi returns.</summary>
    static readonly FreeFn StbFree = typeof(StbImage).Assembly.GetType("StbImageSharp.Hebron.Runtime.CRuntime")!
        .GetMethod("free", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)!.CreateDelegate<FreeFn>();

    /// <summary>16-bit samples at full depth through stb's 16-bit path (the public API only returns 8 bits).</summary>
    static unsafe Decoded Decode16(byte[] bytes)
    {
        using var ms = new MemoryStream(bytes, writable: false);
        var ctx = new StbImage.stbi__context(ms);
        int w, h, comp;
        ushort* p = StbImage.stbi__load_and_postprocess_16bit(ctx, &w, &h, &comp, 0);
        if (p == null) throw new InvalidOperationException(StbImage.stbi__g_failure_reason ?? "unknown error");
        try
        {
            var s = new int[checked(w * h * comp)];
            for (int i = 0; i < s.Length; i++) s[i] = p[i];
            return new Decoded(w, h, comp, 16, s);
        }
        finally { StbFree(p); }
    }

    public static (int H, int W) ReadShape(string path)
    {
        // decoded in full, so a cut or corrupt file is found when a dataset is opened, not when first sampled
        var d = Decode(path, ReadBytes(path), keepPaletteIndices: false);
        return (d.Height, d.Width);
    }

    public static Volume ReadImage(string path, string? name = null)
    {
        var d = Decode(path, ReadBytes(path), keepPaletteIndices: false);
        float scale = d.BitDepth == 16 ? 65535f : 255f;
        var img = new float[d.Width * d.Height];
        // grey (+alpha) takes the grey sample; colour takes ITU-R BT.601 luma as stb's grey conversion does
        for (int i = 0; i < img.Length; i++)
        {
            int o = i * d.Channels;
            int v = d.Channels >= 3 ? (d.Samples[o] * 77 + d.Samples[o + 1] * 150 + d.Samples[o + 2] * 29) >> 8 : d.Samples[o];
            img[i] = v / scale;
        }
        return new Volume(name ?? Path.GetFileNameWithoutExtension(path), 1, d.Height, d.Width, img);
    }

    public static byte[] ReadMask(string path, out int height, out int width)
    {
        var bytes = ReadBytes(path);
        var d = Decode(path, bytes, keepPaletteIndices: true);
        height = d.Height; width = d.Width;
        var (depth, colorType) = Ihdr(bytes);
        if (colorType == 3) return PaletteIndices(path, bytes, d);
        // stb scales 1/2/4-bit grey to 0..255 (1 -> 255 at 1 bit); a mask's stored sample is its class index
        int lowBitScale = colorType is 0 or 4 && depth is 1 or 2 or 4 ? 255 / ((1 << depth) - 1) : 1;
        var mask = new byte[d.Width * d.Height];
        for (int i = 0; i < mask.Length; i++)
        {
            int o = i * d.Channels, v = d.Samples[o] / lowBitScale;
            if (d.Channels >= 3 && (d.Samples[o + 1] != v || d.Samples[o + 2] != v))
                throw new InvalidDataException($"PNG mask '{path}': a colour image (pixel ({i % d.Width}, {i / d.Width}) is RGB {v},{d.Samples[o + 1]},{d.Samples[o + 2]}); " +
                                               "a mask holds class indices as grey values or palette indices");
            if (v > 255)
                throw new InvalidDataException($"PNG mask '{path}': pixel ({i % d.Width}, {i / d.Width}) has value {v}; class indices must be 0..255");
            mask[i] = (byte)v;
        }
        return mask;
    }

    /// <summary>stb expands a palette to colours; each colour is mapped back to its palette entry (PLTE, with tRNS
    /// alpha). Two entries of the same colour make the index ambiguous, which is an error only where it is used.</summary>
    static byte[] PaletteIndices(string path, byte[] bytes, Decoded d)
    {
        byte[]? plte = null, trns = null;
        for (long pos = 8; pos + 12 <= bytes.Length;)
        {
            long len = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan((int)pos));
            if (pos + 12 + len > bytes.Length) break;
            var type = System.Text.Encoding.ASCII.GetString(bytes, (int)pos + 4, 4);
            if (type == "PLTE") plte = bytes.AsSpan((int)pos + 8, (int)len).ToArray();
            else if (type == "tRNS") trns = bytes.AsSpan((int)pos + 8, (int)len).ToArray();
            else if (type == "IEND") break;
            pos += 12 + len;
        }
        if (plte == null || plte.Length % 3 != 0) throw new InvalidDataException($"PNG mask '{path}': paletted image without a valid PLTE chunk");
        var index = new Dictionary<int, int>();
        for (int e = 0; e < plte.Length / 3; e++)
        {
            int a = trns != null && e < trns.Length ? trns[e] : 255;
            int key = (plte[3 * e] << 24) | (plte[3 * e + 1] << 16) | (plte[3 * e + 2] << 8) | a;
            index[key] = index.ContainsKey(key) ? -1 : e;
        }
        var mask = new byte[d.Width * d.Height];
        for (int i = 0; i < mask.Length; i++)
        {
            int o = i * d.Channels;
            int key = (d.Samples[o] << 24) | (d.Samples[o + 1] << 16) | (d.Samples[o + 2] << 8) | (d.Channels > 3 ? d.Samples[o + 3] : 255);
            if (!index.TryGetValue(key, out int e) || e < 0)
                throw new InvalidDataException($"PNG mask '{path}': pixel ({i % d.Width}, {i / d.Width}) has a colour that " +
                                               $"{(e < 0 ? "several palette entries share, so its class index is ambiguous" : "is not in the palette")}");
            mask[i] = (byte)e;
        }
        return mask;
    }

    /// <summary>Writes one (H, W) slice of class indices as an 8-bit grey PNG, atomically.</summary>
    public static void WriteMask(string path, byte[] mask, int height, int width) =>
        AtomicFile.Write(path, s => new ImageWriter().WritePng(mask, width, height, StbImageWriteSharp.ColorComponents.Grey, s));

    /// <summary>Writes an image in [0, 1] as an 8-bit grey PNG, atomically.</summary>
    public static void WriteImage(string path, float[] image, int height, int width)
    {
        var b = new byte[image.Length];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)Math.Clamp(MathF.Round(image[i] * 255f), 0, 255);
        AtomicFile.Write(path, s => new ImageWriter().WritePng(b, width, height, StbImageWriteSharp.ColorComponents.Grey, s));
    }
}
