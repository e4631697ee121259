using System.Text.Json;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using StbImageSharp;

namespace SemiSeg.Tests.Cli;

/// <summary>
/// `evaluate --predictions ... --overlays` as a user of another toolkit runs it: masks written by nibabel (one stored
/// mirrored along x, one on another grid, one uint8 with scl_slope), scored through the real CLI; the bad case is
/// listed and the exit code is 1 while the good ones are scored; the overlay PNGs decode at the panel size and show
/// each class's colour where its mask is.
/// </summary>
public class EvaluateOverlaysCliTests
{
    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "nifti", name);

    /// <summary>
    /// Checks one mask panel of an overlay PNG against the mask slice it shows, at every pixel's centre: background is
    /// grey (R = G = B), a class's outline (a pixel with a differently labelled 4-neighbour, or on the border) is
    /// exactly the class colour, its inside the colour blended over grey (the class's own channel above the others).
    /// Layout as <see cref="OverlayPanel.Render"/> draws it: 8 px padding, panels at y = 28 + 20, scale =
    /// ceil(256 / max(H, W)).
    /// </summary>
    internal static void AssertPanelShows(ImageResult img, int panel, byte[] mask, int h, int w)
    {
        int scale = (int)Math.Ceiling(256.0 / Math.Max(h, w));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int px = 8 + panel * (w * scale + 8) + x * scale + scale / 2, py = 48 + y * scale + scale / 2;
                int o = 3 * (py * img.Width + px);
                var got = (R: img.Data[o], G: img.Data[o + 1], B: img.Data[o + 2]);
                int c = mask[y * w + x];
                if (c == 0) { Assert.True(got.R == got.G && got.G == got.B, $"panel {panel} ({x},{y}) background: {got}"); continue; }
                var col = OverlayPanel.ColorOf(c);
                bool edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || mask[y * w + x - 1] != c || mask[y * w + x + 1] != c || mask[(y - 1) * w + x] != c || mask[(y + 1) * w + x] != c;
                if (edge) Assert.True((got.R, got.G, got.B) == (col.Red, col.Green, col.Blue), $"panel {panel} ({x},{y}) class {c} outline: {got}, expected {col}");
                else Assert.False(got.R == got.G && got.G == got.B, $"panel {panel} ({x},{y}) class {c} inside is plain grey");
            }
    }

    [Fact]
    public void EvaluateScoresTheGoodMasksListsTheBadOneAndDrawsTheBestAndMedian()
    {
        using var t = new TempDir();
        foreach (var d in new[] { "d/imagesTr", "d/labelsTr", "d/imagesTs", "d/labelsTs", "pred" }) Directory.CreateDirectory(t[d]);
        File.Copy(Fixture("eval_image.nii.gz"), t["d/imagesTr/t.nii.gz"]);
        File.Copy(Fixture("eval_label.nii.gz"), t["d/labelsTr/t.nii.gz"]);
        foreach (var c in new[] { "a", "b", "c" })
        {
            File.Copy(Fixture("eval_image.nii.gz"), t[$"d/imagesTs/{c}.nii.gz"]);
            File.Copy(Fixture("eval_label.nii.gz"), t[$"d/labelsTs/{c}.nii.gz"]);
        }
        File.Copy(Fixture("eval_pred_flipx.nii.gz"), t["pred/a_pred.nii.gz"]);
        File.Copy(Fixture("eval_pred_spacing.nii.gz"), t["pred/b_pred.nii.gz"]);
        File.Copy(Fixture("eval_pred_scaled.nii.gz"), t["pred/c_pred.nii.gz"]);

        var (code, stdout, stderr) = CliTests.Run("evaluate", "--data", t["d"], "--predictions", t["pred"], "--output", t["eval"], "--mode", "spacing", "--overlays");
        Assert.True(code == 1, $"exit {code}: {stderr}");
        Assert.Contains("failed: b: ", stderr);
        Assert.Contains("b_pred.nii.gz", stderr);
        Assert.Contains("error: 1 of 3 case(s) could not be scored", stderr);
        Assert.Contains("note: 1 prediction(s) stored in another axis order or direction", stderr);
        using (var json = JsonDocument.Parse(File.ReadAllText(t["eval/metrics.json"])))
        {
            Assert.Equal(2, json.RootElement.GetProperty("cases").GetInt32());
            Assert.Equal(1.0, json.RootElement.GetProperty("mean").GetProperty("dice").GetDouble());
            var failed = json.RootElement.GetProperty("failed").EnumerateArray().Single();
            Assert.Equal("b", failed.GetProperty("case").GetString());
            Assert.Contains("voxel size", failed.GetProperty("reason").GetString());
            var a = json.RootElement.GetProperty("per_case")[0];
            Assert.Equal("NIfTI header (pixdim)", a.GetProperty("spacing_source").GetString());
            Assert.StartsWith("reoriented", a.GetProperty("geometry").GetString());
        }

        // both scored cases have Dice 1: best is the first by name, the median the other; the worst is the median again
        var files = Directory.GetFiles(t["eval/overlays"]).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "best_a.png", "median_c.png" }, files);
        Assert.DoesNotContain(Directory.GetFiles(t["eval/overlays"]), f => f.EndsWith(".tmp", StringComparison.Ordinal));
        var label = Nifti.ReadLabel(Fixture("eval_label.nii.gz"), out var hdr);
        int h = hdr.Ny, w = hdr.Nx, n = h * w;
        int z = OverlayPanel.ShowSlice(label, label, hdr.Nz, n);
        Assert.Equal(1, z); // the block (6 voxels) and the bar (4) share slice 1
        var slice = label.AsSpan(z * n, n).ToArray();
        foreach (var f in files)
        {
            var png = File.ReadAllBytes(t[$"eval/overlays/{f}"]);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
            var img = ImageResult.FromMemory(png, ColorComponents.RedGreenBlue);
            int scale = (int)Math.Ceiling(256.0 / Math.Max(h, w));
            Assert.Equal((8 + 3 * (w * scale + 8), 28 + 20 + h * scale + 26 + 8), (img.Width, img.Height));
            AssertPanelShows(img, 1, slice, h, w);
            // the prediction panel: case a was stored mirrored; drawn after reorientation it is the reference itself
            AssertPanelShows(img, 2, slice, h, w);
        }
        // the known pixels: the bar (class 2, green) at x = 4, the block (class 1, red) from x = 1
        var best = ImageResult.FromMemory(File.ReadAllBytes(t["eval/overlays/best_a.png"]), ColorComponents.RedGreenBlue);
        (int, int, int) Px(int panel, int x, int y)
        {
            int scale = (int)Math.Ceiling(256.0 / Math.Max(h, w));
            int o = 3 * ((48 + y * scale + scale / 2) * best.Width + 8 + panel * (w * scale + 8) + x * scale + scale / 2);
            return (best.Data[o], best.Data[o + 1], best.Data[o + 2]);
        }
        Assert.Equal((0, 255, 0), Px(2, 4, 2));
        Assert.Equal((255, 0, 0), Px(2, 1, 1));

        // a later evaluation into the same folder leaves only its own pictures
        File.Delete(t["pred/a_pred.nii.gz"]);
        File.Copy(Fixture("eval_pred_scaled.nii.gz"), t["pred/a_pred.nii.gz"]);
        File.Delete(t["pred/b_pred.nii.gz"]);
        var (code2, _, stderr2) = CliTests.Run("evaluate", "--data", t["d"], "--predictions", t["pred"], "--output", t["eval"], "--overlays");
        Assert.True(code2 == 1, stderr2);
        Assert.Contains("no prediction for case 'b'", stderr2);
        Assert.Equal(new[] { "best_a.png", "median_c.png" }, Directory.GetFiles(t["eval/overlays"]).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal));
        // --spacing in medpy mode is refused before anything is scored
        var (code3, _, stderr3) = CliTests.Run("evaluate", "--data", t["d"], "--predictions", t["pred"], "--output", t["eval3"], "--spacing", "1,1,1");
        Assert.Equal(2, code3);
        Assert.Contains("--mode medpy", stderr3);
        Assert.False(File.Exists(t["eval3/metrics.json"]));
    }
}
