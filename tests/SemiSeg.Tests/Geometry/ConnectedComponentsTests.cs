using System.Text.Json;
using SemiSeg.Geometry;

namespace SemiSeg.Tests.Geometry;

/// <summary>
/// <see cref="ConnectedComponents.LargestComponent"/> against scikit-image's measure.label as the references use it
/// (Fixtures/fidelity/largest_cc.py: BCP's get_ACDC_2DLargestCC per slice, the LA lineage's getLargestCC per volume,
/// both connectivities, equally large components and classes without pixels): the same map, voxel for voxel.
/// </summary>
public class ConnectedComponentsTests
{
    public static IEnumerable<object[]> Cases() =>
        FidelityFixture.Load("largest_cc.json").GetProperty("cases").EnumerateArray().Select(c => new object[] { c.GetProperty("name").GetString()! });

    [Theory]
    [MemberData(nameof(Cases))]
    public void KeepsWhatScikitImageKeeps(string name)
    {
        var c = FidelityFixture.Load("largest_cc.json").GetProperty("cases").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        byte[] Bytes(string key) => c.GetProperty(key).EnumerateArray().Select(v => (byte)v.GetInt32()).ToArray();
        int I(string key) => c.GetProperty(key).GetInt32();
        var labels = Bytes("labels");
        var copy = (byte[])labels.Clone();
        var kept = ConnectedComponents.LargestComponent(labels, I("d"), I("h"), I("w"), I("classes"),
            c.GetProperty("per_slice").GetBoolean(), c.GetProperty("full").GetBoolean());
        var expected = Bytes("expected");
        Assert.Equal(copy, labels);   // the input is left alone
        var wrong = Enumerable.Range(0, kept.Length).Where(i => kept[i] != expected[i]).ToArray();
        Assert.True(wrong.Length == 0, $"{wrong.Length} voxels differ from scikit-image, first at {wrong.FirstOrDefault()}");
    }

    [Fact]
    public void TeethJoinedAtTheBottomAreOneComponent()
    {
        // a comb: 10 teeth of 19 voxels, each its own tree until the scan reaches the bottom row that joins them;
        // a separate 30-voxel blob beats any one tooth but not the comb (200 voxels), so it goes
        const int h = 20, w = 19;
        var m = new byte[3 * h * w];
        for (int x = 0; x < w; x += 2) for (int y = 0; y < h - 1; y++) m[y * w + x] = 1;
        for (int x = 0; x < w; x++) m[(h - 1) * w + x] = 1;
        var expected = (byte[])m.Clone();
        for (int y = 0; y < 6; y++) for (int x = 0; x < 5; x++) m[2 * h * w + y * w + x] = 1;   // the blob: slice 3, apart from the comb
        var kept = ConnectedComponents.LargestComponent(m, 3, h, w, 2, perSlice: false, fullConnectivity: false);
        Assert.Equal(expected, kept);
        // per slice, the blob is its slice's largest
        Assert.Equal(m, ConnectedComponents.LargestComponent(m, 3, h, w, 2, perSlice: true, fullConnectivity: false));
    }
}
