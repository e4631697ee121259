using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

public class Hdf5AndPngTests
{
    [Fact]
    public void Hdf5RoundTrip2DAnd3D()
    {
        using var t = new TempDir();
        var img = Enumerable.Range(0, 2 * 3 * 4).Select(i => i / 24f).ToArray();
        var lab = Enumerable.Range(0, 24).Select(i => (byte)(i % 3)).ToArray();
        Hdf5.Write(t["v.h5"], new Volume("v", 2, 3, 4, img, lab));
        var r = Hdf5.Read(t["v.h5"], withLabel: true);
        Assert.Equal((2, 3, 4), (r.Depth, r.Height, r.Width));
        Assert.Equal(img, r.Image);
        Assert.Equal(lab, r.Label);
        Assert.Equal((2, 3, 4), Hdf5.ReadShape(t["v.h5"]));

        Hdf5.Write(t["s.h5"], new Volume("s", 1, 6, 4, img, lab), as2D: true);
        var s = Hdf5.Read(t["s.h5"], withLabel: false);
        Assert.Equal((1, 6, 4), (s.Depth, s.Height, s.Width));
        Assert.Null(s.Label);
    }

    [Fact]
    public void CorruptHdf5AndMissingDatasetsAreClearErrors()
    {
        using var t = new TempDir();
        File.WriteAllBytes(t["junk.h5"], Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => Hdf5.Read(t["junk.h5"], true));
        Assert.Contains("junk.h5", e.Message);
        Hdf5.Write(t["nolabel.h5"], new Volume("n", 1, 4, 4, new float[16]));
        var e2 = Assert.Throws<InvalidDataException>(() => Hdf5.Read(t["nolabel.h5"], withLabel: true));
        Assert.Contains("nolabel.h5", e2.Message);
        Assert.Contains("'label'", e2.Message);
        Assert.Throws<FileNotFoundException>(() => Hdf5.Read(t["absent.h5"], true));
    }

    [SkippableFact]
    public void ReadsRealAcdcGzipSliceAndVolume()
    {
        var root = SharedData.AcdcRoot();
        Skip.If(root == null, SharedData.MissingMessage);
        var v = Hdf5.Read(Path.Combine(root!, "data", "patient001_frame01.h5"), withLabel: true);
        Assert.Equal((10, 256, 216), (v.Depth, v.Height, v.Width));
        Assert.InRange(v.Image.Min(), 0f, 0.01f);
        Assert.InRange(v.Image.Max(), 0.99f, 1f);
        Assert.Equal(new byte[] { 0, 1, 2, 3 }, v.Label!.Distinct().OrderBy(x => x).ToArray());
        var s = Hdf5.Read(Path.Combine(root!, "data", "patient003_frame01_slice_1.h5"), withLabel: true);
        Assert.Equal(1, s.Depth);
    }

    [Fact]
    public void PngMaskAndImageRoundTrip()
    {
        using var t = new TempDir();
        var mask = Enumerable.Range(0, 5 * 7).Select(i => (byte)(i % 4)).ToArray();
        Png.WriteMask(t["m.png"], mask, 5, 7);
        var back = Png.ReadMask(t["m.png"], out int h, out int w);
        Assert.Equal((5, 7), (h, w));
        Assert.Equal(mask, back);
        var img = Enumerable.Range(0, 35).Select(i => i / 34f).ToArray();
        Png.WriteImage(t["i.png"], img, 5, 7);
        var v = Png.ReadImage(t["i.png"]);
        for (int i = 0; i < img.Length; i++) Assert.InRange(Math.Abs(img[i] - v.Image[i]), 0, 0.5 / 255 + 1e-6);
        File.WriteAllText(t["bad.png"], "not a png");
        Assert.Contains("bad.png", Assert.Throws<InvalidDataException>(() => Png.ReadImage(t["bad.png"])).Message);
    }

    [Fact]
    public void ImageLabelShapeMismatchIsAnError()
    {
        using var t = new TempDir();
        Nifti.Write(t["img.nii"], new Volume("i", 2, 4, 4, new float[32]), false);
        Nifti.Write(t["lab.nii"], new Volume("l", 2, 4, 5, new float[40], new byte[40]), true);
        var e = Assert.Throws<InvalidDataException>(() => VolumeIO.Read(t["img.nii"], t["lab.nii"]));
        Assert.Contains("lab.nii", e.Message);
        Assert.Contains("2x4x5", e.Message);
    }
}
