using System.Text;
using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

public class MetaImageTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LabelsAndImagesRoundTrip(bool compress)
    {
        using var dir = new TempDir();
        var lab = Enumerable.Range(0, 4 * 6).Select(i => (byte)(i % 3)).ToArray();
        MetaImage.Write(dir["l.mha"], 1, 4, 6, bytes: lab, compress: compress);
        var (back, d, h, w) = VolumeIO.ReadLabel(dir["l.mha"]);
        Assert.Equal((1, 4, 6), (d, h, w));
        Assert.Equal(lab, back);
        var img = Enumerable.Range(0, 2 * 4 * 6).Select(i => i / 48f).ToArray();
        MetaImage.Write(dir["i.mha"], 2, 4, 6, floats: img, compress: compress);
        var vol = VolumeIO.Read(dir["i.mha"], null);
        Assert.Equal((2, 4, 6), (vol.Depth, vol.Height, vol.Width));
        Assert.Equal(img, vol.Image);
    }

    [Fact]
    public void BigEndianMultiChannelHeadersAreHonoured()
    {
        using var dir = new TempDir();
        // 2x1 image, 3 channels of big-endian unsigned shorts, spacing 0.5 x 0.25, data in a separate .raw file
        File.WriteAllText(dir["a.mhd"], "ObjectType = Image\nNDims = 2\nDimSize = 2 1\nElementNumberOfChannels = 3\nElementSpacing = 0.5 0.25\n" +
                                         "ElementByteOrderMSB = True\nElementType = MET_USHORT\nElementDataFile = a.raw\n");
        File.WriteAllBytes(dir["a.raw"], new byte[] { 0, 30, 0, 60, 0, 90, 0, 0, 0, 0, 0, 3 });
        var vol = MetaImage.ReadImage(dir["a.mhd"]);
        Assert.Equal(new[] { 60f / 255, 1f / 255 }, vol.Image.Select(v => MathF.Round(v, 6)).ToArray(), new FloatTolerance());
        Assert.Equal(new[] { 1.0, 0.25, 0.5 }, vol.Spacing);
    }

    sealed class FloatTolerance : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) < 1e-5;
        public int GetHashCode(float f) => 0;
    }

    [Fact]
    public void BadFilesNameTheFileAndTheProblem()
    {
        using var dir = new TempDir();
        MetaImage.Write(dir["l.mha"], 1, 4, 6, bytes: new byte[24]);
        var bytes = File.ReadAllBytes(dir["l.mha"]);
        File.WriteAllBytes(dir["short.mha"], bytes[..^5]);
        var e = Assert.Throws<InvalidDataException>(() => VolumeIO.ReadLabel(dir["short.mha"]));
        Assert.Contains("short.mha", e.Message);
        Assert.Contains("data ends", e.Message);
        File.WriteAllText(dir["nohdr.mha"], "hello\nworld\n");
        Assert.Contains("nohdr.mha", Assert.Throws<InvalidDataException>(() => VolumeIO.ReadLabel(dir["nohdr.mha"])).Message);
        File.WriteAllText(dir["type.mha"], "NDims = 2\nDimSize = 1 1\nElementType = MET_COMPLEX\nElementDataFile = LOCAL\nxxxxxxxx");
        Assert.Contains("MET_COMPLEX", Assert.Throws<InvalidDataException>(() => VolumeIO.ReadLabel(dir["type.mha"])).Message);
    }

    [Fact]
    public void PsfhLayoutSplitsAnnotatedImagesAndKeepsTheRestUnlabeled()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["image_mha"]); Directory.CreateDirectory(dir["label_mha"]);
        for (int i = 0; i < 12; i++)
        {
            MetaImage.Write(Path.Combine(dir["image_mha"], $"{i:00000}.mha"), 1, 8, 8, bytes: Enumerable.Repeat((byte)(i * 10), 64).ToArray());
            if (i < 10) MetaImage.Write(Path.Combine(dir["label_mha"], $"{i:00000}.mha"), 1, 8, 8, bytes: Enumerable.Range(0, 64).Select(k => (byte)(k % 3)).ToArray());
        }
        Assert.True(PsfhDataset.IsPsfh(dir.Path));
        var m = PsfhDataset.Load(dir.Path, labeledCount: 2);
        Assert.Equal(3, m.NumClasses);
        Assert.Equal((2, 1), (m.Test.Count, m.Val.Count));
        Assert.Equal(2, m.Labeled.Count);
        Assert.Equal(12 - 3 - 2, m.Unlabeled.Count);
        Assert.All(m.Unlabeled, s => Assert.Null(s.Case.LabelPath));
        Assert.Contains(m.Unlabeled, s => s.Case.Name == "00011");
        Assert.Throws<ArgumentException>(() => PsfhDataset.Load(dir.Path, labeledCount: 8));
    }

    [Fact]
    public void PsfhsPlanesBecomeOneGreyPlane()
    {
        using var dir = new TempDir();
        // PSFHS's layout: the image as three equal planes (DimSize = W H 3), the label as one plane
        var plane = Enumerable.Range(0, 4 * 6).Select(i => (byte)(10 * i)).ToArray();
        MetaImage.Write(dir["same.mha"], 3, 4, 6, bytes: plane.Concat(plane).Concat(plane).ToArray());
        var lab = Enumerable.Range(0, 4 * 6).Select(i => (byte)(i % 3)).ToArray();
        MetaImage.Write(dir["l.mha"], 1, 4, 6, bytes: lab);
        Assert.Throws<InvalidDataException>(() => VolumeIO.Read(dir["same.mha"], dir["l.mha"]));   // as a volume the shapes differ
        var notices = new List<string>();
        var previous = VolumeIO.Notice;
        VolumeIO.Notice = notices.Add;
        try
        {
            var vol = VolumeIO.Read(new CaseRef("same", dir["same.mha"], dir["l.mha"], Split.Test) { PlanesAreChannels = true });
            Assert.Equal((1, 4, 6), (vol.Depth, vol.Height, vol.Width));
            Assert.Equal(plane.Select(v => v / 255f), vol.Image);   // 8-bit: scaled by 255
            Assert.Equal(lab, vol.Label);
            Assert.Empty(notices);
            // unequal planes are colour: luminance, said once however many such images are read
            var r = plane; var g = plane.Select(v => (byte)(v / 2)).ToArray(); var b = new byte[plane.Length];
            MetaImage.Write(dir["rgb.mha"], 3, 4, 6, bytes: r.Concat(g).Concat(b).ToArray());
            var colour = new CaseRef("rgb", dir["rgb.mha"], null, Split.Train) { PlanesAreChannels = true };
            var grey = VolumeIO.Read(colour);
            VolumeIO.Read(colour);
            Assert.Equal(1, grey.Depth);
            Assert.Equal(0.299f * r[5] / 255f + 0.587f * g[5] / 255f, grey.Image[5], 5);
            Assert.Equal(1, notices.Count);
            Assert.Contains("luminance", notices[0]);
            // two planes that differ are no colour image
            MetaImage.Write(dir["two.mha"], 2, 4, 6, bytes: r.Concat(g).ToArray());
            var e = Assert.Throws<InvalidDataException>(() => VolumeIO.Read(new CaseRef("two", dir["two.mha"], null, Split.Train) { PlanesAreChannels = true }));
            Assert.Contains("two.mha", e.Message);
        }
        finally { VolumeIO.Notice = previous; }
    }
}
