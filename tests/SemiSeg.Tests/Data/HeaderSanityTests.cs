using System.Buffers.Binary;
using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

/// <summary>Headers that lie (sizes, offsets, types, numbers written wrongly) end in one error naming the file, before
/// anything large is allocated; nothing is read silently wrong.</summary>
public class HeaderSanityTests
{
    static Volume Sample(int d = 3, int h = 4, int w = 5) =>
        new("s", d, h, w, Enumerable.Range(0, d * h * w).Select(i => (float)i).ToArray());

    static byte[] WithHeaderPatch(byte[] file, Action<Span<byte>> patch)
    {
        var b = (byte[])file.Clone();
        patch(b);
        return b;
    }

    [Fact]
    public void NiftiVoxOffsetNaNIsRefusedNotReadFromByteZero()
    {
        using var t = new TempDir();
        Nifti.Write(t["ok.nii"], Sample(), asLabel: false);
        File.WriteAllBytes(t["nan.nii"], WithHeaderPatch(File.ReadAllBytes(t["ok.nii"]), b => BinaryPrimitives.WriteSingleLittleEndian(b[108..], float.NaN)));
        var e = Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["nan.nii"]));
        Assert.Contains("nan.nii", e.Message);
        Assert.Contains("vox_offset", e.Message);
    }

    [Fact]
    public void NiftiDatatypeThatDisagreesWithBitpixIsRefused()
    {
        using var t = new TempDir();
        Nifti.Write(t["ok.nii"], Sample(), asLabel: false);
        // datatype uint8 over float32 data (bitpix 32): formerly a quarter of the bytes read as uint8
        File.WriteAllBytes(t["dt.nii"], WithHeaderPatch(File.ReadAllBytes(t["ok.nii"]), b => BinaryPrimitives.WriteInt16LittleEndian(b[70..], 2)));
        var e = Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["dt.nii"]));
        Assert.Contains("dt.nii", e.Message);
        Assert.Contains("bitpix", e.Message);
    }

    [Fact]
    public void NiftiNaNVoxelSizeIsRefused()
    {
        using var t = new TempDir();
        Nifti.Write(t["ok.nii"], Sample(), asLabel: false);
        File.WriteAllBytes(t["pd.nii"], WithHeaderPatch(File.ReadAllBytes(t["ok.nii"]), b => BinaryPrimitives.WriteSingleLittleEndian(b[80..], float.NaN)));
        Assert.Contains("pixdim[1]", Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["pd.nii"])).Message);
    }

    [Fact]
    public void NiftiOverTheVolumeLimitIsRefusedNamingTheFile()
    {
        using var t = new TempDir();
        Nifti.Write(t["ok.nii"], Sample(), asLabel: false);
        var b = WithHeaderPatch(File.ReadAllBytes(t["ok.nii"])[..352], h =>
        {
            BinaryPrimitives.WriteInt16LittleEndian(h[42..], 1400); BinaryPrimitives.WriteInt16LittleEndian(h[44..], 1400); BinaryPrimitives.WriteInt16LittleEndian(h[46..], 1400);
            BinaryPrimitives.WriteInt16LittleEndian(h[70..], 2); BinaryPrimitives.WriteInt16LittleEndian(h[72..], 8);
        });
        // 1400^3 uint8 = 2.7 GB of voxel data, as a sparse file: the length is real, nothing is written
        using (var f = File.Create(t["big.nii"])) { f.Write(b); f.SetLength(352 + 1400L * 1400 * 1400); }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["big.nii"]));
        Assert.Contains("big.nii", e.Message);
        Assert.Contains("1400x1400x1400", e.Message);
        // the same header in a small .nii.gz is refused from the gzip's length, before reading
        using (var f = File.Create(t["big.nii.gz"]))
        using (var z = new System.IO.Compression.GZipStream(f, System.IO.Compression.CompressionLevel.Fastest)) { z.Write(b); z.Write(new byte[100_000]); }
        var e2 = Assert.Throws<InvalidDataException>(() => Nifti.ReadLabel(t["big.nii.gz"], out _));
        Assert.Contains("big.nii.gz", e2.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
    }

    [Fact]
    public void NiftiReadsBackAcrossStreamChunksAndCutGzipIsTruncated()
    {
        using var t = new TempDir();
        // more than one 1 MiB read chunk, int16 labels and float images, gzip and plain
        var v = new Volume("v", 10, 200, 300, Enumerable.Range(0, 600_000).Select(i => (float)(i % 1000) / 7).ToArray(),
            Enumerable.Range(0, 600_000).Select(i => (byte)(i % 5)).ToArray());
        Nifti.Write(t["v.nii.gz"], v, asLabel: false);
        Nifti.Write(t["l.nii"], v, asLabel: true);
        Assert.Equal(v.Image, Nifti.ReadImage(t["v.nii.gz"]).Image);
        Assert.Equal(v.Label, Nifti.ReadLabel(t["l.nii"], out _));
        var gz = File.ReadAllBytes(t["v.nii.gz"]);
        File.WriteAllBytes(t["cut.nii.gz"], gz[..(gz.Length * 2 / 3)]);
        var e = Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["cut.nii.gz"]));
        Assert.Contains("cut.nii.gz", e.Message);
    }

    static string Mha(string dims, string type = "MET_UCHAR", string extra = "", int ndims = 2) =>
        $"ObjectType = Image\nNDims = {ndims}\nDimSize = {dims}\n{extra}ElementType = {type}\nElementDataFile = LOCAL\n";

    [Theory]
    [InlineData("typo", "NDims = 2\nDimSize = 256 abc\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "DimSize")]
    [InlineData("ndims", "NDims = two\nDimSize = 4 4\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "NDims")]
    [InlineData("overflow", "NDims = 2\nDimSize = 256 99999999999\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "DimSize")]
    [InlineData("huge", "NDims = 2\nDimSize = 100000 100000\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n", "100000x100000")]
    [InlineData("short", "NDims = 2\nDimSize = 46000 46000\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "data ends after 16 of 2116000000 bytes")]
    [InlineData("chneg", "NDims = 2\nDimSize = 4 4\nElementNumberOfChannels = -1\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "ElementNumberOfChannels")]
    [InlineData("chzero", "NDims = 2\nDimSize = 4 4\nElementNumberOfChannels = 0\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "ElementNumberOfChannels")]
    [InlineData("comma", "NDims = 2\nDimSize = 4 4\nElementSpacing = 1,0 1,0\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "spacing")]
    [InlineData("binary", "NDims = 2\n\u0001\u0002garbage\u0007\nElementDataFile = LOCAL\n", "not text")]
    public void MetaImageHeaderTyposAreOneLineErrors(string name, string header, string mentions)
    {
        using var t = new TempDir();
        var path = t[name + ".mha"];
        File.WriteAllBytes(path, System.Text.Encoding.Latin1.GetBytes(header).Concat(new byte[16]).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => MetaImage.ReadImage(path));
        Assert.Contains(name + ".mha", e.Message);
        Assert.Contains(mentions, e.Message);
        Assert.DoesNotContain(e.Message, c => char.IsControl(c));
    }

    [Fact]
    public void MetaImageNaNVoxelsAreRefusedAndDotSpacingIsRead()
    {
        using var t = new TempDir();
        var img = new float[] { 0, 0.5f, float.NaN, 1 };
        MetaImage.Write(t["nan.mha"], 1, 2, 2, floats: img);
        var e = Assert.Throws<InvalidDataException>(() => MetaImage.ReadImage(t["nan.mha"]));
        Assert.Contains("nan.mha", e.Message);
        Assert.Contains("voxel 2 is NaN", e.Message);
        File.WriteAllBytes(t["sp.mha"], System.Text.Encoding.ASCII.GetBytes(Mha("2 2", extra: "ElementSpacing = 0.5 1.25\n")).Concat(new byte[4]).ToArray());
        Assert.Equal(new[] { 1.0, 1.25, 0.5 }, MetaImage.ReadImage(t["sp.mha"]).Spacing);
    }
}
