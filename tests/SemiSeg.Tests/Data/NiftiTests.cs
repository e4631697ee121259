using System.Buffers.Binary;
using System.IO.Compression;
using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

public class NiftiTests
{
    static Volume Sample(int d = 3, int h = 4, int w = 5)
    {
        var img = new float[d * h * w];
        var lab = new byte[d * h * w];
        for (int i = 0; i < img.Length; i++) { img[i] = i * 0.25f - 3; lab[i] = (byte)(i % 4); }
        return new Volume("s", d, h, w, img, lab) { Spacing = new[] { 10.0, 1.25, 0.75 } };
    }

    [Theory]
    [InlineData("x.nii")]
    [InlineData("x.nii.gz")]
    public void ImageAndLabelRoundTripWithSpacing(string file)
    {
        using var t = new TempDir();
        var v = Sample();
        Nifti.Write(t[file], v, asLabel: false);
        Nifti.Write(t["lab_" + file], v, asLabel: true);
        var r = Nifti.ReadImage(t[file]);
        Assert.Equal((3, 4, 5), (r.Depth, r.Height, r.Width));
        Assert.Equal(v.Image, r.Image);
        Assert.Equal(v.Spacing, r.Spacing);
        var lab = Nifti.ReadLabel(t["lab_" + file], out var hdr);
        Assert.Equal(v.Label, lab);
        Assert.Equal(2, hdr.DataType);
    }

    [Fact]
    public void RotatedAffineSurvivesRoundTripInSformAndQform()
    {
        using var t = new TempDir();
        var v = Sample();
        double a = 0.3, c = Math.Cos(a), s = Math.Sin(a);
        // rotation about z with spacing (x 0.75, y 1.25, z 10) and an origin
        v.Affine = new[] { c * 0.75, -s * 1.25, 0, -12.5, s * 0.75, c * 1.25, 0, 30.0, 0, 0, 10.0, 7.0, 0, 0, 0, 1 };
        Nifti.Write(t["r.nii.gz"], v, asLabel: false);
        var r = Nifti.ReadImage(t["r.nii.gz"]);
        for (int i = 0; i < 16; i++) Assert.Equal(v.Affine[i], r.Affine![i], 4);
        var h = Nifti.ReadHeader(t["r.nii.gz"]);
        var q = Nifti.QuaternToAffine(h.QuaternB, h.QuaternC, h.QuaternD, h.QoffsetX, h.QoffsetY, h.QoffsetZ, h.PixDim[1], h.PixDim[2], h.PixDim[3], h.PixDim[0]);
        for (int i = 0; i < 12; i++) Assert.Equal(v.Affine[i], q[i], 4);
    }

    /// <summary>A file built byte by byte from the specification: big-endian int16 data with scl_slope/scl_inter and qform only.</summary>
    [Fact]
    public void ReadsHandBuiltBigEndianInt16WithScaling()
    {
        using var t = new TempDir();
        var b = new byte[352 + 2 * 3 * 2];
        BinaryPrimitives.WriteInt32BigEndian(b, 348);
        short[] dim = { 3, 3, 2, 1, 1, 1, 1, 1 };
        for (int i = 0; i < 8; i++) BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(40 + 2 * i), dim[i]);
        BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(70), 4); // int16
        BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(72), 16);
        float[] pix = { 1, 2, 3, 4, 1, 1, 1, 1 };
        for (int i = 0; i < 8; i++) BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(76 + 4 * i), pix[i]);
        BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(108), 352);
        BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(112), 0.5f);
        BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(116), 10f);
        BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(252), 1); // qform, identity rotation
        BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(268), 5f);
        "n+1\0"u8.ToArray().CopyTo(b, 344);
        short[] data = { -4, 0, 2, 6, 8, 100 };
        for (int i = 0; i < 6; i++) BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(352 + 2 * i), data[i]);
        File.WriteAllBytes(t["be.nii"], b);
        var v = Nifti.ReadImage(t["be.nii"]);
        Assert.Equal((1, 2, 3), (v.Depth, v.Height, v.Width));
        Assert.Equal(new float[] { 8, 10, 11, 13, 14, 60 }, v.Image);
        Assert.Equal(new[] { 4.0, 3.0, 2.0 }, v.Spacing);
        Assert.Equal(new double[] { 2, 0, 0, 5, 0, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1 }, v.Affine);
    }

    [Fact]
    public void CorruptOrTruncatedFilesNameTheFileAndTheProblem()
    {
        using var t = new TempDir();
        File.WriteAllBytes(t["junk.nii"], Enumerable.Repeat((byte)7, 400).ToArray());
        var e1 = Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["junk.nii"]));
        Assert.Contains("junk.nii", e1.Message);
        Assert.Contains("sizeof_hdr", e1.Message);

        Nifti.Write(t["ok.nii"], Sample(), asLabel: false);
        var bytes = File.ReadAllBytes(t["ok.nii"]);
        File.WriteAllBytes(t["cut.nii"], bytes[..(bytes.Length - 10)]);
        var e2 = Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["cut.nii"]));
        Assert.Contains("cut.nii", e2.Message);
        Assert.Contains("truncated", e2.Message);

        File.WriteAllBytes(t["bad.nii.gz"], bytes[..100]); // not gzip at all
        var e3 = Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["bad.nii.gz"]));
        Assert.Contains("bad.nii.gz", e3.Message);
    }

    [Fact]
    public void FourDimensionalAndNonIntegerLabelsAreRejected()
    {
        using var t = new TempDir();
        var v = Sample();
        Nifti.Write(t["img.nii"], v, asLabel: false);
        var e = Assert.Throws<InvalidDataException>(() => Nifti.ReadLabel(t["img.nii"], out _));
        Assert.Contains("img.nii", e.Message);
        var b = File.ReadAllBytes(t["img.nii"]);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(40), 4);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(48), 2);
        File.WriteAllBytes(t["4d.nii"], b);
        Assert.Contains("4-D", Assert.Throws<InvalidDataException>(() => Nifti.ReadImage(t["4d.nii"])).Message);
    }

    [Fact]
    public void WriteIsAtomicAndLeavesNoTemporaryFiles()
    {
        using var t = new TempDir();
        Nifti.Write(t["a.nii.gz"], Sample(), asLabel: true);
        Assert.Single(Directory.GetFiles(t.Path));
        using var gz = new GZipStream(File.OpenRead(t["a.nii.gz"]), CompressionMode.Decompress);
        var head = new byte[4];
        gz.ReadExactly(head);
        Assert.Equal(348, BinaryPrimitives.ReadInt32LittleEndian(head));
    }
}
