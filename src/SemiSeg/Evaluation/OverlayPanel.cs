using SemiSeg.Data;
using SkiaSharp;

namespace SemiSeg.Evaluation;

/// <summary>
/// A picture of one prediction, as nnU-Net's overlay PNGs and MONAI's blend_images show them: image | ground truth |
/// prediction side by side (or image | prediction without ground truth), each mask drawn as a translucent fill with
/// its outline in the class colour over the intensity-windowed image (1st-99th percentile), a title, and a legend
/// naming the classes. Drawn with SkiaSharp (ScottPlot's renderer).
/// </summary>
public static class OverlayPanel
{
    /// <summary>Class colours (class 1 first): ITK-SNAP's first label colours, distinguishable on grey.</summary>
    static readonly SKColor[] Palette =
    {
        new(255, 0, 0), new(0, 255, 0), new(0, 0, 255), new(255, 255, 0), new(0, 255, 255), new(255, 0, 255),
        new(255, 239, 213), new(0, 0, 205), new(205, 133, 63), new(210, 180, 140),
    };

    public static SKColor ColorOf(int cls) => Palette[(cls - 1) % Palette.Length];

    /// <summary>PNG bytes of the panel for a 2D slice: <paramref name="image"/> is [H, W] row-major, masks hold class
    /// indices (0 = background).</summary>
    public static byte[] Render(float[] image, int height, int width, byte[]? truth, byte[] prediction, IReadOnlyList<string> classNames, string title)
    {
        if (image.Length != height * width || prediction.Length != image.Length || (truth is not null && truth.Length != image.Length))
            throw new ArgumentException($"overlay '{title}': image {image.Length}, prediction {prediction.Length}, truth {truth?.Length} values for {height}x{width}");
        int scale = Math.Max(1, (int)Math.Ceiling(256.0 / Math.Max(height, width)));
        int pw = width * scale, ph = height * scale;
        var panels = truth is null ? new[] { ("image", (byte[]?)null), ("prediction", prediction) } : new[] { ("image", (byte[]?)null), ("ground truth", truth), ("prediction", prediction) };
        const int pad = 8, titleH = 28, captionH = 20, legendH = 26;
        int w = pad + panels.Length * (pw + pad), h = titleH + captionH + ph + legendH + pad;
        using var surface = SKSurface.Create(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var font = new SKFont(SKTypeface.Default, 15);
        using var small = new SKFont(SKTypeface.Default, 13);
        canvas.DrawText(title, pad, 20, SKTextAlign.Left, font, text);

        using var gray = Windowed(image, height, width);
        for (int p = 0; p < panels.Length; p++)
        {
            var (caption, mask) = panels[p];
            int x0 = pad + p * (pw + pad), y0 = titleH + captionH;
            canvas.DrawText(caption, x0, titleH + 14, SKTextAlign.Left, small, text);
            using var img = mask is null ? gray.Copy() : Blend(gray, mask, height, width);
            using var nearest = new SKPaint { FilterQuality = SKFilterQuality.None };
            canvas.DrawBitmap(img, new SKRect(x0, y0, x0 + pw, y0 + ph), nearest);
        }
        // legend: the classes present in either mask
        var present = new SortedSet<int>(prediction.Concat(truth ?? Array.Empty<byte>()).Where(v => v > 0).Select(v => (int)v));
        float lx = pad, ly = titleH + captionH + ph + 8;
        foreach (var c in present.Count > 0 ? present : new SortedSet<int>(Enumerable.Range(1, Math.Max(1, classNames.Count - 1))))
        {
            using var swatch = new SKPaint { Color = ColorOf(c), Style = SKPaintStyle.Fill };
            canvas.DrawRect(lx, ly, 14, 14, swatch);
            string name = c < classNames.Count ? classNames[c] : $"class {c}";
            canvas.DrawText(name, lx + 18, ly + 12, SKTextAlign.Left, small, text);
            lx += 18 + small.MeasureText(name) + 16;
        }
        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>The cases to show: best, median and worst by per-case Dice (fewer when there are fewer cases; NaN
    /// cases left out; the median is the case at rank ⌊n/2⌋, best first), labelled "best", "median", "worst".</summary>
    public static List<(string Label, string Case, double Dice)> PickCases(IReadOnlyDictionary<string, double> caseDice)
    {
        var ranked = caseDice.Where(kv => !double.IsNaN(kv.Value)).OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var picks = new List<(string, string, double)>();
        if (ranked.Count == 0) return picks;
        foreach (var (label, index) in new[] { ("best", 0), ("median", ranked.Count / 2), ("worst", ranked.Count - 1) })
            if (!picks.Any(p => p.Item2 == ranked[index].Key)) picks.Add((label, ranked[index].Key, ranked[index].Value));
        return picks;
    }

    /// <summary>The slice a volume is best shown by: the one with the most foreground in the ground truth (or, without
    /// it, in the prediction); the middle slice when both are empty.</summary>
    public static int ShowSlice(byte[]? truth, byte[] prediction, int depth, int sliceSize)
    {
        var source = truth ?? prediction;
        int best = depth / 2, bestCount = 0;
        for (int z = 0; z < depth; z++)
        {
            int n = 0;
            for (int i = z * sliceSize; i < (z + 1) * sliceSize; i++) if (source[i] > 0) n++;
            if (n > bestCount) { bestCount = n; best = z; }
        }
        return best;
    }

    static SKBitmap Windowed(float[] image, int height, int width)
    {
        var finite = image.Where(float.IsFinite).OrderBy(v => v).ToArray();
        float lo = finite.Length == 0 ? 0 : finite[(int)(0.01 * (finite.Length - 1))], hi = finite.Length == 0 ? 1 : finite[(int)(0.99 * (finite.Length - 1))];
        if (hi <= lo) hi = lo + 1;
        var bmp = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                float v = image[y * width + x];
                byte g = (byte)Math.Clamp((int)Math.Round(255 * (float.IsFinite(v) ? (v - lo) / (hi - lo) : 0)), 0, 255);
                bmp.SetPixel(x, y, new SKColor(g, g, g));
            }
        return bmp;
    }

    /// <summary>The mask over the image: 35% fill, full-colour outline (pixels with a differently labelled 4-neighbour).</summary>
    static SKBitmap Blend(SKBitmap gray, byte[] mask, int height, int width)
    {
        var bmp = gray.Copy();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int c = mask[y * width + x];
                if (c == 0) continue;
                var col = ColorOf(c);
                bool edge = x == 0 || y == 0 || x == width - 1 || y == height - 1
                    || mask[y * width + x - 1] != c || mask[y * width + x + 1] != c || mask[(y - 1) * width + x] != c || mask[(y + 1) * width + x] != c;
                var g = gray.GetPixel(x, y);
                bmp.SetPixel(x, y, edge ? col : new SKColor((byte)(0.65 * g.Red + 0.35 * col.Red), (byte)(0.65 * g.Green + 0.35 * col.Green), (byte)(0.65 * g.Blue + 0.35 * col.Blue)));
            }
        return bmp;
    }
}

/// <summary>
/// The pictures of an evaluation or a prediction run, kept small while the cases are scored: for each case only the
/// slice it is shown by (<see cref="OverlayPanel.ShowSlice"/>: the most ground-truth foreground, or predicted
/// foreground without ground truth), so a test set of large volumes costs a few slices of memory. Panels go to
/// FOLDER/overlays/ as PNG, each written atomically.
/// </summary>
public sealed class OverlaySet
{
    sealed record Shown(float[] Image, byte[]? Truth, byte[] Prediction, int Height, int Width, int Z, int Depth);

    readonly Dictionary<string, Shown> _cases = new(StringComparer.Ordinal);
    readonly IReadOnlyList<string> _classNames;

    public OverlaySet(IReadOnlyList<string> classNames) => _classNames = classNames;

    /// <summary>Keeps the slice case <paramref name="name"/> is shown by; <paramref name="truth"/> null without ground truth.</summary>
    public void Add(string name, Volume vol, byte[]? truth, byte[] prediction)
    {
        int n = vol.SliceSize, z = OverlayPanel.ShowSlice(truth, prediction, vol.Depth, n);
        lock (_cases)
            _cases[name] = new Shown(vol.SliceImage(z), truth?.AsSpan(z * n, n).ToArray(), prediction.AsSpan(z * n, n).ToArray(), vol.Height, vol.Width, z, vol.Depth);
    }

    byte[] Render(string name, string title)
    {
        var s = _cases[name];
        var where = s.Depth > 1 ? $", slice z={s.Z} of {s.Depth}" : "";
        return OverlayPanel.Render(s.Image, s.Height, s.Width, s.Truth, s.Prediction, _classNames, title + where);
    }

    static void Save(string path, byte[] png) => AtomicFile.Write(path, f => f.Write(png));

    /// <summary>
    /// Panels of the best, median and worst scored cases by mean foreground Dice (<see cref="OverlayPanel.PickCases"/>)
    /// as DIR/overlays/{best,median,worst}_CASE.png; earlier pictures of that kind in the folder are removed, so the
    /// folder (and the HTML report that shows it) holds this evaluation's only. Returns the files written.
    /// </summary>
    public IReadOnlyList<string> WriteBestMedianWorst(string directory, EvaluationReport report)
    {
        var dice = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var k in report.Cases.Where(k => _cases.ContainsKey(k.Case)))
        {
            var v = k.Classes.Select(m => m.Dice).Where(d => !double.IsNaN(d)).ToArray();
            dice[k.Case] = v.Length == 0 ? double.NaN : v.Average();
        }
        var dir = Path.Combine(directory, "overlays");
        Directory.CreateDirectory(dir);
        var written = new List<string>();
        foreach (var (label, name, d) in OverlayPanel.PickCases(dice))
        {
            var path = Path.Combine(dir, $"{label}_{name}.png");
            Save(path, Render(name, $"{label}: {name}, mean Dice {d.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture)}"));
            written.Add(path);
        }
        foreach (var old in Directory.GetFiles(dir, "*.png"))
            if (!written.Contains(old) && new[] { "best_", "median_", "worst_" }.Any(p => Path.GetFileName(old).StartsWith(p, StringComparison.Ordinal)))
                File.Delete(old);
        return written;
    }

    /// <summary>Writes the panel of one case (image | prediction, or with ground truth) to DIR/overlays/CASE.png.</summary>
    public string WriteOne(string directory, string name)
    {
        var dir = Path.Combine(directory, "overlays");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, name + ".png");
        Save(path, Render(name, name));
        lock (_cases) _cases.Remove(name);
        return path;
    }
}
