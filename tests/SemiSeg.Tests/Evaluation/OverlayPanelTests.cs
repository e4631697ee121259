using SemiSeg.Evaluation;
using StbImageSharp;

namespace SemiSeg.Tests.Evaluation;

public class OverlayPanelTests
{
    [Fact]
    public void ThePanelShowsImageTruthAndPredictionWithClassColoursAndALegend()
    {
        const int h = 32, w = 32;
        var image = new float[h * w];
        for (int i = 0; i < image.Length; i++) image[i] = (i % w) * 10f;  // a horizontal ramp
        var truth = new byte[h * w];
        var pred = new byte[h * w];
        for (int y = 8; y < 24; y++) for (int x = 8; x < 24; x++) { truth[y * w + x] = 1; pred[y * w + x + 2] = 2; }
        var png = OverlayPanel.Render(image, h, w, truth, pred, new[] { "background", "RV", "Myo" }, "case 7 (Dice 0.50)");
        var img = ImageResult.FromMemory(png, ColorComponents.RedGreenBlue);
        int scale = 8;                                     // 32 px shown at 256 px
        Assert.Equal(8 + 3 * (w * scale + 8), img.Width);  // three panels
        (int R, int G, int B) Px(int panel, int x, int y)
        {
            int px = 8 + panel * (w * scale + 8) + x * scale + scale / 2, py = 28 + 20 + y * scale + scale / 2;
            int o = 3 * (py * img.Width + px);
            return (img.Data[o], img.Data[o + 1], img.Data[o + 2]);
        }
        // panel 0: plain grey ramp; the windowing maps the darkest column to black
        var left = Px(0, 0, 16); Assert.True(left.R == left.G && left.G == left.B && left.R < 10, $"{left}");
        // panel 1: class 1 (red) outline on the truth's edge, translucent red inside, untouched grey outside
        Assert.Equal((255, 0, 0), Px(1, 8, 16));
        var inside = Px(1, 16, 16); Assert.True(inside.R > inside.G + 40 && inside.G == inside.B, $"{inside}");
        var outside = Px(1, 30, 2); Assert.True(outside.R == outside.G && outside.G == outside.B, $"{outside}");
        // panel 2: class 2 (green) outline shifted right by the prediction's offset
        Assert.Equal((0, 255, 0), Px(2, 10, 16));
        // the legend row below the panels is drawn (swatches and names)
        int legendY = 28 + 20 + h * scale + 15, legendDark = 0;
        for (int x = 0; x < img.Width; x++) { int o = 3 * (legendY * img.Width + x); if (img.Data[o] + img.Data[o + 1] + img.Data[o + 2] < 600) legendDark++; }
        Assert.True(legendDark > 20, $"legend row has {legendDark} drawn pixels");
        // without ground truth: image | prediction
        var two = ImageResult.FromMemory(OverlayPanel.Render(image, h, w, null, pred, new[] { "bg", "a", "b" }, "t"), ColorComponents.RedGreenBlue);
        Assert.Equal(8 + 2 * (w * scale + 8), two.Width);
        Assert.Throws<ArgumentException>(() => OverlayPanel.Render(image, h, w, truth, new byte[3], new[] { "bg" }, "bad"));
    }

    [Fact]
    public void PicksBestMedianAndWorstCasesAndTheFullestSlice()
    {
        var dice = new Dictionary<string, double> { ["a"] = 0.9, ["b"] = 0.5, ["c"] = double.NaN, ["d"] = 0.7, ["e"] = 0.1 };
        // 4 ranked cases (NaN left out), best first: the median is rank n/2 = 2
        Assert.Equal(new[] { ("best", "a"), ("median", "b"), ("worst", "e") }, OverlayPanel.PickCases(dice).Select(p => (p.Label, p.Case)));
        Assert.Equal(new[] { "best" }, OverlayPanel.PickCases(new Dictionary<string, double> { ["x"] = 0.3 }).Select(p => p.Label));
        var mask = new byte[3 * 4];
        mask[4 + 1] = 1; mask[8] = 1; mask[9] = 2; mask[10] = 1;
        Assert.Equal(2, OverlayPanel.ShowSlice(mask, new byte[12], 3, 4));
        Assert.Equal(1, OverlayPanel.ShowSlice(null, new byte[12], 3, 4)); // nothing anywhere: the middle slice
    }
}
