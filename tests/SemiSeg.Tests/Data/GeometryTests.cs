using SemiSeg.Data;
using SemiSeg.Interop;
using SemiSeg.Models;
using static SemiSeg.Tests.Cli.CliTests;

namespace SemiSeg.Tests.Data;

/// <summary>Image geometry kept from input to prediction: MetaImage Offset/TransformMatrix/ElementSpacing, .mha
/// wherever images are read, and nnU-Net channel files refused by name instead of becoming extra cases.</summary>
public class GeometryTests
{
    // axis 0 (x) points along LPS +y, axis 1 along LPS -x, axis 2 along +z; spacing 0.5, 0.7, 2; origin (10, -20, 30)
    const string Oriented = "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n" +
                            "TransformMatrix = 0 1 0 -1 0 0 0 0 1\nOffset = 10 -20 30\nElementSpacing = 0.5 0.7 2\n" +
                            "DimSize = 32 32 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n";

    static void WriteOriented(string path)
    {
        var data = Enumerable.Range(0, 32 * 32 * 2).Select(i => (byte)(i * 7 % 251)).ToArray();
        File.WriteAllBytes(path, System.Text.Encoding.ASCII.GetBytes(Oriented).Concat(data).ToArray());
    }

    [Fact]
    public void MetaImageOriginAndOrientationBecomeTheRasAffineAndAreWrittenBack()
    {
        using var t = new TempDir();
        WriteOriented(t["a.mha"]);
        var vol = MetaImage.ReadImage(t["a.mha"]);
        Assert.Equal(new[] { 2.0, 0.7, 0.5 }, vol.Spacing);
        // voxel (i, j, k) -> LPS: (10 - 0.7 j, -20 + 0.5 i, 30 + 2 k); RAS negates x and y
        Assert.Equal(new double[] { 0, 0.7, 0, -10, -0.5, 0, 0, 20, 0, 0, 2, 30, 0, 0, 0, 1 }, vol.Affine!.Select(v => Math.Round(v, 12)).ToArray());

        // written back, the header states the same geometry, and reading it again gives the same affine
        var lab = new byte[vol.Image.Length];
        MetaImage.Write(t["b.mha"], vol.Depth, vol.Height, vol.Width, bytes: lab, geometry: vol);
        var header = File.ReadAllText(t["b.mha"]).Split("ElementDataFile")[0];
        Assert.Contains("Offset = 10 -20 30\n", header);
        Assert.Contains("TransformMatrix = 0 1 0 -1 0 0 0 0 1\n", header);
        Assert.Contains("ElementSpacing = 0.5 0.7 2\n", header);
        Assert.Equal(vol.Affine, MetaImage.ReadImage(t["b.mha"]).Affine!.Select(v => Math.Round(v, 12)).ToArray());
    }

    [Fact]
    public void PredictReadsMhaFoldersAndKeepsTheirGeometry()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["in"]);
        WriteOriented(t["in/case1.mha"]);
        using (var net = new UNet2D(new UNetConfig { NumClasses = 2 })) PyTorchWeights.Export(net, t["w.pt"], WeightsFormat.Pt);
        var (c, o, e) = Run("predict", "--checkpoint", t["w.pt"], "--input-size", "32,32", "--input", t["in"], "--output", t["out"]);
        Assert.True(c == 0, e);
        Assert.Contains("wrote 1 mask file(s)", o);
        var header = File.ReadAllText(t["out/case1_pred.mha"]).Split("ElementDataFile")[0];
        Assert.Contains("Offset = 10 -20 30\n", header);
        Assert.Contains("TransformMatrix = 0 1 0 -1 0 0 0 0 1\n", header);
        Assert.Contains("ElementSpacing = 0.5 0.7 2\n", header);
        var (_, d, h, w) = VolumeIO.ReadLabel(t["out/case1_pred.mha"]);
        Assert.Equal((2, 32, 32), (d, h, w));
        // NIfTI output of the same input carries the same (RAS) affine
        Assert.Equal(0, Run("predict", "--checkpoint", t["w.pt"], "--input-size", "32,32", "--input", t["in"], "--output", t["nii"], "--format", "nifti").code);
        var back = VolumeIO.Read(t["nii/case1_pred.nii.gz"], null);
        Assert.Equal(MetaImage.ReadImage(t["in/case1.mha"]).Affine!.Select(v => (float)v), back.Affine!.Select(v => (float)v));
    }

    [Fact]
    public void OwnDataFoldersTakeMhaAndRefuseExtraNnUNetChannelsByName()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["d/imagesTr"]); Directory.CreateDirectory(t["d/labelsTr"]);
        WriteOriented(t["d/imagesTr/a_0000.mha"]);
        MetaImage.Write(t["d/labelsTr/a.mha"], 2, 32, 32, bytes: new byte[2 * 32 * 32]);
        WriteOriented(t["d/imagesTr/b.mha"]);
        var m = CustomDataset.Load(t["d"], 2);
        Assert.Equal(2, m.Labeled.Count);   // a: 2 labeled slices
        Assert.Equal(2, m.Unlabeled.Count); // b: unlabeled
        Assert.Equal("a", m.Labeled[0].Case.Name);

        // a second channel of case a is not a new case: refused, naming the file
        WriteOriented(t["d/imagesTr/a_0001.mha"]);
        var e = Assert.Throws<InvalidDataException>(() => CustomDataset.Load(t["d"], 2));
        Assert.Contains("imagesTr/a_0001.mha", e.Message);
        Assert.Contains("input channel 1 of case 'a'", e.Message);
    }
}
