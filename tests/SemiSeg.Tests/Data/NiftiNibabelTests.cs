using System.Text.Json;
using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

/// <summary>
/// NIfTI files written by nibabel (Fixtures/nifti/make_nibabel_fixtures.py, nibabel 5.0), read by SemiSeg as nibabel
/// reads them: the affine (sform when its code is set, else the qform), the qform/sform codes, every data type, the
/// scl_slope/scl_inter scaling and the voxel order. Tolerances: values are compared after SemiSeg's float32 image
/// (relative 1e-7 of the value, so 1e-6·max(1, |v|) holds with margin); affines to 1e-5, the float32 header fields
/// being converted and (for the qform) turned into a matrix in double precision by both.
/// </summary>
public class NiftiNibabelTests
{
    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "nifti", name);

    public static IEnumerable<object[]> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("nibabel_expected.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new object[] { c.GetProperty("file").GetString()! }).ToList();
    }

    static JsonElement Case(string file)
    {
        var doc = JsonDocument.Parse(File.ReadAllText(Fixture("nibabel_expected.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("file").GetString() == file);
    }

    static double[] D(JsonElement e) => e.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReadsWhatNibabelWroteAsNibabelReadsIt(string file)
    {
        var c = Case(file);
        var path = Fixture(file);
        var shape = c.GetProperty("shape_xyz").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var vol = VolumeIO.Read(path, null);
        Assert.Equal((shape[2], shape[1], shape[0]), (vol.Depth, vol.Height, vol.Width));

        var expected = D(c.GetProperty("values_x_fastest"));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(vol.Image[i] - expected[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])), $"{file} voxel {i}: {vol.Image[i]} vs nibabel {expected[i]}");

        var h = Nifti.ReadHeader(path);
        Assert.Equal(c.GetProperty("sform_code").GetInt32(), (int)h.SformCode);
        Assert.Equal(c.GetProperty("qform_code").GetInt32(), (int)h.QformCode);
        var affine = D(c.GetProperty("affine"));
        var ours = vol.EffectiveAffine();
        for (int i = 0; i < 16; i++) Assert.True(Math.Abs(ours[i] - affine[i]) <= 1e-5, $"{file} affine[{i}]: {ours[i]} vs nibabel {affine[i]}");
        var zooms = D(c.GetProperty("zooms"));
        var zyx = new[] { zooms[2], zooms[1], zooms[0] };
        for (int i = 0; i < 3; i++) Assert.True(Math.Abs(vol.Spacing[i] - zyx[i]) <= 1e-6, $"{file} spacing {i}: {vol.Spacing[i]} vs nibabel {zyx[i]}");
    }

    [Fact]
    public void LabelMapsComeBackAsTheirClassIndices()
    {
        var c = Case("label_uint8.nii.gz");
        var lab = Nifti.ReadLabel(Fixture("label_uint8.nii.gz"), out _);
        Assert.Equal(D(c.GetProperty("values_x_fastest")).Select(v => (byte)v).ToArray(), lab);
    }

    [Fact]
    public void ScaledBytesAreNotTheValues()
    {
        // guard on the fixture itself: the stored uint8 bytes differ from the values (slope 0.5, inter -3)
        var c = Case("scaled_uint8.nii.gz");
        var stored = D(c.GetProperty("stored_x_fastest"));
        var values = D(c.GetProperty("values_x_fastest"));
        Assert.All(stored.Zip(values), p => Assert.Equal(p.First * 0.5 - 3, p.Second, 6));
    }
}
