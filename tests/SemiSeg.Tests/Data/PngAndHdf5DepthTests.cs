using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using PureHDF;
using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

/// <summary>Hand-written PNGs of the kinds StbImageWriteSharp cannot write (16-bit, paletted), so the reader is
/// tested on what real tools save.</summary>
public static class TestPng
{
    static void Chunk(Stream s, string type, byte[] data)
    {
        var head = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(head, (uint)data.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(head, 4);
        s.Write(head);
        s.Write(data);
        var c = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(c, System.IO.Hashing.Crc32.HashToUInt32(head.AsSpan(4).ToArray().Concat(data).ToArray()));
        s.Write(c);
    }

    /// <summary>Samples row by row (16-bit ones big-endian, as PNG stores them), filter 0 on every row.</summary>
    public static void Write(string path, int width, int height, int bitDepth, int colorType, int[] samples, byte[]? plte = null, byte[]? trns = null)
    {
        int channels = colorType switch { 0 or 3 => 1, 2 => 3, 4 => 2, _ => 4 };
        int bps = bitDepth / 8;
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            if (bitDepth < 8)
            {
                // samples packed from the most significant bit, rows padded to whole bytes
                var row = new byte[(width * bitDepth + 7) / 8];
                for (int x = 0; x < width; x++) row[x * bitDepth / 8] |= (byte)(samples[y * width + x] << (8 - bitDepth - x * bitDepth % 8));
                raw.Write(row);
                continue;
            }
            for (int i = 0; i < width * channels; i++)
            {
                int v = samples[y * width * channels + i];
                if (bps == 2) { raw.WriteByte((byte)(v >> 8)); raw.WriteByte((byte)v); } else raw.WriteByte((byte)v);
            }
        }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw.ToArray());
        using var f = File.Create(path);
        f.Write(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 });
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = (byte)bitDepth; ihdr[9] = (byte)colorType;
        Chunk(f, "IHDR", ihdr);
        if (plte != null) Chunk(f, "PLTE", plte);
        if (trns != null) Chunk(f, "tRNS", trns);
        Chunk(f, "IDAT", z.ToArray());
        Chunk(f, "IEND", Array.Empty<byte>());
    }
}

public class PngAndHdf5DepthTests
{
    [Fact]
    public void SixteenBitPngMaskKeepsItsClassValues()
    {
        using var t = new TempDir();
        var classes = Enumerable.Range(0, 6 * 5).Select(i => i % 4).ToArray();
        TestPng.Write(t["m16.png"], 6, 5, 16, 0, classes);
        var m = Png.ReadMask(t["m16.png"], out int h, out int w);
        Assert.Equal((5, 6), (h, w));
        Assert.Equal(classes.Select(c => (byte)c).ToArray(), m);
        // through the format dispatcher too (what train/evaluate use)
        Assert.Equal(m, VolumeIO.ReadLabel(t["m16.png"]).label);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void LowBitDepthGreyMaskKeepsItsStoredValues(int depth)
    {
        using var t = new TempDir();
        var classes = Enumerable.Range(0, 9 * 3).Select(i => i % (1 << depth)).ToArray();
        TestPng.Write(t["low.png"], 9, 3, depth, 0, classes);
        Assert.Equal(classes.Select(c => (byte)c).ToArray(), Png.ReadMask(t["low.png"], out _, out _));
        // as an image the same file is grey levels in [0, 1]
        Assert.Equal(1f, Png.ReadImage(t["low.png"]).Image.Max());
    }

    [Fact]
    public void SixteenBitPngMaskAbove255IsAClearError()
    {
        using var t = new TempDir();
        TestPng.Write(t["big.png"], 2, 2, 16, 0, new[] { 0, 1, 300, 2 });
        var e = Assert.Throws<InvalidDataException>(() => Png.ReadMask(t["big.png"], out _, out _));
        Assert.Contains("big.png", e.Message);
        Assert.Contains("300", e.Message);
    }

    [Fact]
    public void SixteenBitGreyImageIsScaledBy65535()
    {
        using var t = new TempDir();
        TestPng.Write(t["i16.png"], 3, 1, 16, 0, new[] { 0, 65535, 257 * 100 + 7 });
        var v = Png.ReadImage(t["i16.png"]);
        Assert.Equal(0f, v.Image[0]);
        Assert.Equal(1f, v.Image[1]);
        Assert.Equal((257 * 100 + 7) / 65535f, v.Image[2], 6);
    }

    [Fact]
    public void PalettePngMaskGivesPaletteIndices()
    {
        using var t = new TempDir();
        // entry 0 black, 1 dark red, 2 green: grey conversion would give 0/38/150, not 0/1/2
        var plte = new byte[] { 0, 0, 0, 128, 0, 0, 0, 255, 0 };
        var idx = new[] { 0, 1, 2, 1, 0, 2 };
        TestPng.Write(t["pal.png"], 3, 2, 8, 3, idx, plte);
        Assert.Equal(idx.Select(i => (byte)i).ToArray(), Png.ReadMask(t["pal.png"], out _, out _));
    }

    [Fact]
    public void PaletteWithDuplicateColoursIsRefusedWhereUsed()
    {
        using var t = new TempDir();
        TestPng.Write(t["dup.png"], 2, 1, 8, 3, new[] { 0, 1 }, new byte[] { 9, 9, 9, 9, 9, 9 });
        var e = Assert.Throws<InvalidDataException>(() => Png.ReadMask(t["dup.png"], out _, out _));
        Assert.Contains("dup.png", e.Message);
        Assert.Contains("ambiguous", e.Message);
    }

    [Fact]
    public void ColourMaskIsRefusedSayingItIsRgb()
    {
        using var t = new TempDir();
        TestPng.Write(t["rgb.png"], 2, 1, 8, 2, new[] { 0, 0, 0, 255, 0, 0 });
        var e = Assert.Throws<InvalidDataException>(() => Png.ReadMask(t["rgb.png"], out _, out _));
        Assert.Contains("RGB 255,0,0", e.Message);
        // a grey-valued colour mask is still read
        TestPng.Write(t["grey_rgb.png"], 2, 1, 8, 2, new[] { 0, 0, 0, 1, 1, 1 });
        Assert.Equal(new byte[] { 0, 1 }, Png.ReadMask(t["grey_rgb.png"], out _, out _));
    }

    [Fact]
    public void TruncatedPngNamesTheFileWithoutControlCharacters()
    {
        using var t = new TempDir();
        TestPng.Write(t["ok.png"], 40, 40, 8, 0, Enumerable.Range(0, 1600).Select(i => i % 7).ToArray());
        var bytes = File.ReadAllBytes(t["ok.png"]);
        File.WriteAllBytes(t["cut.png"], bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => Png.ReadMask(t["cut.png"], out _, out _));
        Assert.Contains("cut.png", e.Message);
        Assert.DoesNotContain(e.Message, c => char.IsControl(c));
    }

    static void WriteH5(string path, Action<H5File> fill)
    {
        var f = new H5File();
        fill(f);
        f.Write(path);
    }

    [Fact]
    public void UnsignedHdf5ImagesKeepTheirSign()
    {
        using var t = new TempDir();
        WriteH5(t["u16.h5"], f => f["image"] = new ushort[,] { { 1451, 60000 }, { 32768, 65535 } });
        Assert.Equal(new[] { 1451f, 60000f, 32768f, 65535f }, Hdf5.Read(t["u16.h5"], false).Image);
        WriteH5(t["u32.h5"], f => f["image"] = new uint[,] { { 4000000000u, 1 } });
        Assert.Equal(new[] { 4000000000f, 1f }, Hdf5.Read(t["u32.h5"], false).Image);
        WriteH5(t["u8.h5"], f => f["image"] = new byte[,] { { 200, 255 } });
        Assert.Equal(new[] { 200f, 255f }, Hdf5.Read(t["u8.h5"], false).Image);
        WriteH5(t["i8.h5"], f => f["image"] = new sbyte[,] { { -100, 100 } });
        Assert.Equal(new[] { -100f, 100f }, Hdf5.Read(t["i8.h5"], false).Image);
        WriteH5(t["i64.h5"], f => f["image"] = new long[,] { { -5, 7 } });
        Assert.Equal(new[] { -5f, 7f }, Hdf5.Read(t["i64.h5"], false).Image);
    }

    [Fact]
    public void Hdf5LabelsOfEveryIntegerTypeAndSignedNegativesAreChecked()
    {
        using var t = new TempDir();
        WriteH5(t["l16.h5"], f => { f["image"] = new float[,] { { 0, 0 } }; f["label"] = new ushort[,] { { 3, 200 } }; });
        Assert.Equal(new byte[] { 3, 200 }, Hdf5.Read(t["l16.h5"], true).Label);
        WriteH5(t["neg.h5"], f => { f["image"] = new float[,] { { 0, 0 } }; f["label"] = new sbyte[,] { { -1, 1 } }; });
        var e = Assert.Throws<InvalidDataException>(() => Hdf5.Read(t["neg.h5"], true));
        Assert.Contains("neg.h5", e.Message);
        Assert.Contains("-1", e.Message);
    }

    /// <summary>Writes a small chunked dataset of shape <paramref name="small"/> and rewrites its dataspace to
    /// <paramref name="declared"/>: a few-KB file declaring a huge dataset whose chunks were never written.</summary>
    static void WriteDeclaringHuge(string path, ulong[] small, ulong[] declared)
    {
        var data = Array.CreateInstance(typeof(float), small.Select(d => (int)d).ToArray());
        WriteH5(path, f => f["image"] = new H5Dataset(data, chunks: small.Select(d => (uint)d).ToArray()));
        var bytes = File.ReadAllBytes(path);
        var pattern = small.SelectMany(BitConverter.GetBytes).ToArray();
        var replacement = declared.SelectMany(BitConverter.GetBytes).ToArray();
        int hits = 0;
        for (int i = 0; i + pattern.Length <= bytes.Length; i++)
            if (bytes.AsSpan(i, pattern.Length).SequenceEqual(pattern)) { replacement.CopyTo(bytes, i); hits++; }
        Assert.True(hits > 0, "dataspace dimensions not found in the written file");
        File.WriteAllBytes(path, bytes);
    }

    [Fact]
    public void SmallHdf5DeclaringAHugeChunkedDatasetFailsFast()
    {
        using var t = new TempDir();
        WriteDeclaringHuge(t["huge.h5"], new ulong[] { 5, 6, 7 }, new ulong[] { 3000, 3000, 3000 });
        WriteDeclaringHuge(t["wide.h5"], new ulong[] { 11, 13 }, new ulong[] { 40000, 40000 });
        Assert.True(new FileInfo(t["huge.h5"]).Length < 100_000);
        Assert.Equal((3000, 3000, 3000), Hdf5.ReadShape(t["huge.h5"]));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<InvalidDataException>(() => Hdf5.Read(t["huge.h5"], false));
        Assert.Contains("huge.h5", e.Message);
        Assert.Contains("3000x3000x3000", e.Message);
        var e2 = Assert.Throws<InvalidDataException>(() => Hdf5.Read(t["wide.h5"], false));
        Assert.Contains("wide.h5", e2.Message);
        Assert.Contains("40000x40000", e2.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
    }
}
