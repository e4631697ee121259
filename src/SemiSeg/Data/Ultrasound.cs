using System.Globalization;
using SemiSeg.Geometry;

namespace SemiSeg.Data;

/// <summary>
/// The HC18 challenge layout (fetal head circumference, van den Heuvel et al. 2018): <c>training_set/NNN_HC.png</c>
/// images with <c>NNN_HC_Annotation.png</c> ellipse outlines, <c>training_set_pixel_size_and_HC.csv</c>
/// (filename, pixel size (mm), head circumference (mm)), and optionally <c>test_set/</c> images with
/// <c>test_set_pixel_size.csv</c> (no annotations: they join the unlabeled pool).
/// HC18 has no official validation or semi-supervised split, so one is fixed here: the annotated images are grouped by
/// subject (the digits before the first '_', so 010_HC and 010_2HC stay together), the subjects shuffled with a fixed
/// seed, 20% of them held out as test and 10% as validation; the remaining images are the training set, whose first
/// <c>--labeled N</c> (in that shuffled order) keep their masks.
/// </summary>
public static class Hc18Dataset
{
    public const string TrainingCsv = "training_set_pixel_size_and_HC.csv";
    public const string TestCsv = "test_set_pixel_size.csv";
    public static readonly string[] ClassNames = { "background", "head" };

    public static bool IsHc18(string root) => Directory.Exists(root) && File.Exists(Path.Combine(root, TrainingCsv));

    /// <summary>Rows of an HC18 CSV: file name → (pixel size mm, head circumference mm when given).</summary>
    public static Dictionary<string, (double PixelMm, double? HcMm)> ReadCsv(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"HC18 table '{path}' does not exist", path);
        var lines = File.ReadAllLines(path).Where(l => l.Trim().Length > 0).ToList();
        if (lines.Count < 2) throw new InvalidDataException($"HC18 table '{path}': needs a header line and at least one row");
        var result = new Dictionary<string, (double, double?)>(StringComparer.Ordinal);
        for (int r = 1; r < lines.Count; r++)
        {
            var cols = lines[r].Split(',').Select(c => c.Trim()).ToArray();
            if (cols.Length < 2 || !double.TryParse(cols[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var px) || px <= 0)
                throw new InvalidDataException($"HC18 table '{path}' line {r + 1}: expected 'filename,pixel size(mm)[,head circumference (mm)]' with a positive pixel size, got '{lines[r]}'");
            double? hc = null;
            if (cols.Length > 2 && cols[2].Length > 0)
            {
                if (!double.TryParse(cols[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var h) || h <= 0)
                    throw new InvalidDataException($"HC18 table '{path}' line {r + 1}: head circumference '{cols[2]}' is not a positive number");
                hc = h;
            }
            result[cols[0]] = (px, hc);
        }
        return result;
    }

    public static DatasetManifest Load(string root, int? labeledCount = null, double testFraction = 0.2, double valFraction = 0.1, int seed = 1234)
    {
        var table = ReadCsv(Path.Combine(root, TrainingCsv));
        var dir = Path.Combine(root, "training_set");
        var cases = new List<CaseRef>();
        foreach (var (file, (px, hc)) in table.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var img = Path.Combine(dir, file);
            if (!File.Exists(img)) throw new FileNotFoundException($"HC18 dataset '{root}': {TrainingCsv} lists '{file}' but {img} does not exist", img);
            var ann = Path.Combine(dir, Path.GetFileNameWithoutExtension(file) + "_Annotation.png");
            if (!File.Exists(ann)) throw new FileNotFoundException($"HC18 dataset '{root}': '{file}' has no annotation {ann}", ann);
            cases.Add(new CaseRef(Path.GetFileNameWithoutExtension(file), img, ann, Split.Train) { PixelSizeMm = px, HeadCircumferenceMm = hc });
        }
        if (cases.Count == 0) throw new InvalidDataException($"HC18 dataset '{root}': {TrainingCsv} lists no images");
        static string Subject(string name) => name.Split('_')[0];
        var subjects = cases.Select(c => Subject(c.Name)).Distinct().OrderBy(s => s, StringComparer.Ordinal).ToArray();
        new Random(seed).Shuffle(subjects);
        int nTest = (int)Math.Round(testFraction * subjects.Length), nVal = (int)Math.Round(valFraction * subjects.Length);
        var rank = subjects.Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i);
        Split SplitOf(string s) => rank[s] < nTest ? Split.Test : rank[s] < nTest + nVal ? Split.Val : Split.Train;
        var ordered = cases.OrderBy(c => rank[Subject(c.Name)]).ThenBy(c => c.Name, StringComparer.Ordinal).Select(c => c with { Split = SplitOf(Subject(c.Name)) }).ToList();
        var train = ordered.Where(c => c.Split == Split.Train).ToList();
        if (train.Count == 0) throw new InvalidDataException($"HC18 dataset '{root}': too few subjects ({subjects.Length}) to hold out test and validation and still train");
        int n = labeledCount ?? train.Count;
        if (n <= 0 || n > train.Count) throw new ArgumentException($"HC18 dataset '{root}': --labeled {n} is outside 1..{train.Count} (training images)");
        var labeled = train.Take(n).Select(c => new SliceRef(c, 0, new MetaLabels(Subject(c.Name), "", 0, 1))).ToList();
        var unlabeled = train.Skip(n).Select(c => new SliceRef(c with { LabelPath = null }, 0, new MetaLabels(Subject(c.Name), "", 0, 1))).ToList();
        var testCsv = Path.Combine(root, TestCsv);
        if (File.Exists(testCsv))
            foreach (var (file, (px, _)) in ReadCsv(testCsv).OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var img = Path.Combine(root, "test_set", file);
                if (!File.Exists(img)) throw new FileNotFoundException($"HC18 dataset '{root}': {TestCsv} lists '{file}' but {img} does not exist", img);
                var c = new CaseRef("test_" + Path.GetFileNameWithoutExtension(file), img, null, Split.Train) { PixelSizeMm = px };
                unlabeled.Add(new SliceRef(c, 0, new MetaLabels(Subject(file), "", 0, 1)));
            }
        return new DatasetManifest
        {
            Name = $"HC18 '{Path.TrimEndingDirectorySeparator(Path.GetFullPath(root))}'",
            NumClasses = 2,
            ClassNames = ClassNames,
            Labeled = labeled,
            Unlabeled = unlabeled,
            Val = ordered.Where(c => c.Split == Split.Val).ToList(),
            Test = ordered.Where(c => c.Split == Split.Test).ToList(),
            SpacingSource = $"each image's pixel size from {TrainingCsv} (isotropic, mm)",
        };
    }

    /// <summary>Whether a label path is an HC18 ellipse outline (fitted and filled on read).</summary>
    public static bool IsOutline(string labelPath) => labelPath.EndsWith("_Annotation.png", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The annotator's ellipse behind an HC18 outline: HC18's ground truth is an ellipse the annotator fitted to the
    /// skull (the table's head circumference is its perimeter times the pixel size), and the annotation image is that
    /// ellipse drawn as a thin curve. The curve's pixel centres are fitted with the direct least-squares fit, robustly
    /// (<see cref="EllipseFit.FitRobust"/>), so an outline clipped by the image border (186_HC, 346_HC, 352_2HC,
    /// 628_2HC, 787_HC of the release) or broken by a gap still gives the whole ellipse; a curve drawn symmetrically
    /// about the ellipse does not bias the fit. Throws when the image holds too few outline pixels to fit an ellipse.
    /// </summary>
    public static Ellipse FitOutline(byte[] outline, int height, int width, string source)
    {
        var points = new List<(double X, double Y)>();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (outline[y * width + x] != 0) points.Add((x, y));
        if (points.Count < 6) throw new InvalidDataException($"annotation '{source}': {points.Count} outline pixels, too few to fit the head's ellipse");
        var e = EllipseFit.FitRobust(points);
        if (e is null || !(e.B >= 1)) throw new InvalidDataException($"annotation '{source}': its {points.Count} outline pixels do not trace an ellipse");
        return e;
    }

    /// <summary>The HC18 mask: the filled ellipse fitted to the outline (<see cref="FitOutline"/>), 0/1, pixel centres
    /// inside or on the ellipse; the part of a clipped ellipse outside the image is cut off.</summary>
    public static byte[] FillOutline(byte[] outline, int height, int width, string source) =>
        FitOutline(outline, height, width, source).Rasterize(height, width);

    /// <summary>An ellipse drawn as HC18 draws its annotations: a thin curve, every pixel whose square the ellipse
    /// passes through (some corners inside, some outside), so the curve is symmetric about the ellipse.</summary>
    public static byte[] DrawOutline(Ellipse e, int height, int width, byte value = 255)
    {
        var o = new byte[height * width];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int inside = 0;
                for (int k = 0; k < 4; k++)
                    if (e.Radius(x + (k % 2 == 0 ? -0.5 : 0.5), y + (k < 2 ? -0.5 : 0.5)) <= 1) inside++;
                if (inside is > 0 and < 4) o[y * width + x] = value;
            }
        return o;
    }
}

/// <summary>
/// The PSFH layout (pubic symphysis and fetal head in intrapartum transperineal ultrasound; FH-PS-AOP challenge,
/// MICCAI 2023, and the PSFHS data set): <c>image_mha/NAME.mha</c> images with <c>label_mha/NAME.mha</c> masks
/// (0 background, 1 pubic symphysis, 2 fetal head); PNG pairs in the same folders are read too. The released images
/// store the grey image as three identical planes (<c>DimSize = 256 256 3</c>), the labels one plane: an image's planes
/// are read as channels of one plane (<see cref="VolumeIO.PlanesToGrey"/>). Distances are in the header's
/// ElementSpacing units (PSFHS: 1 1, so HD95/ASD are in pixels the header calls mm). Images without a mask
/// are unlabeled. No official semi-supervised split exists: the labeled images are shuffled with a fixed seed, 20% held
/// out as test and 10% as validation, and the first <c>--labeled N</c> of the rest keep their masks.
/// </summary>
public static class PsfhDataset
{
    public static readonly string[] ClassNames = { "background", "pubic symphysis", "fetal head" };

    public static bool IsPsfh(string root) => Directory.Exists(Path.Combine(root, "image_mha")) && Directory.Exists(Path.Combine(root, "label_mha"));

    public static DatasetManifest Load(string root, int? labeledCount = null, double testFraction = 0.2, double valFraction = 0.1, int seed = 1234)
    {
        static bool Supported(string f) => MetaImage.IsMetaImagePath(f) || Png.IsPngPath(f);
        var labels = Directory.EnumerateFiles(Path.Combine(root, "label_mha")).Where(Supported)
            .ToDictionary(f => Path.GetFileNameWithoutExtension(f), f => f, StringComparer.Ordinal);
        var images = Directory.EnumerateFiles(Path.Combine(root, "image_mha")).Where(Supported).OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (images.Count == 0) throw new InvalidDataException($"PSFH dataset '{root}': image_mha/ holds no .mha or .png images");
        var annotated = images.Where(f => labels.ContainsKey(Path.GetFileNameWithoutExtension(f))).ToArray();
        new Random(seed).Shuffle(annotated);
        int nTest = (int)Math.Round(testFraction * annotated.Length), nVal = (int)Math.Round(valFraction * annotated.Length);
        CaseRef Case(string f, Split split, bool withLabel) =>
            new(Path.GetFileNameWithoutExtension(f), f, withLabel ? labels[Path.GetFileNameWithoutExtension(f)] : null, split) { PlanesAreChannels = true };
        var test = annotated.Take(nTest).Select(f => Case(f, Split.Test, true)).ToList();
        var val = annotated.Skip(nTest).Take(nVal).Select(f => Case(f, Split.Val, true)).ToList();
        var train = annotated.Skip(nTest + nVal).ToList();
        if (train.Count == 0) throw new InvalidDataException($"PSFH dataset '{root}': too few annotated images ({annotated.Length}) to hold out test and validation and still train");
        int n = labeledCount ?? train.Count;
        if (n <= 0 || n > train.Count) throw new ArgumentException($"PSFH dataset '{root}': --labeled {n} is outside 1..{train.Count} (annotated training images)");
        static SliceRef Slice(CaseRef c) => new(c, 0, new MetaLabels(c.Name, "", 0, 1));
        var labeled = train.Take(n).Select(f => Slice(Case(f, Split.Train, true))).ToList();
        var unlabeled = train.Skip(n).Concat(images.Except(annotated)).Select(f => Slice(Case(f, Split.Train, false))).ToList();
        return new DatasetManifest
        {
            Name = $"PSFH '{Path.TrimEndingDirectorySeparator(Path.GetFullPath(root))}'", NumClasses = 3, ClassNames = ClassNames,
            Labeled = labeled, Unlabeled = unlabeled, Val = val, Test = test,
            SpacingSource = "each image's MetaImage header ElementSpacing, read as mm (the PSFHS release says 1 1: 1 mm per pixel)",
        };
    }
}

/// <summary>
/// A synthetic fetal-head ultrasound generator writing the HC18 layout, for the demo and the tests: a fan-shaped field
/// of view from a probe at the top, low-echo amniotic fluid, an elliptical head (cephalic index b/a ∈ [0.72, 0.88]) of
/// varying size, angle and position whose bright skull echo ends on the annotated ellipse (HC18 annotates the outer
/// skull border), often broken by echo drop-outs, a midline echo, bright curved distractor echoes outside the head,
/// acoustic shadowing behind the head, depth gain variation, and multiplicative speckle (Rayleigh, spatially correlated).
/// </summary>
public static class UltrasoundPhantom
{
    public sealed record Sample(float[] Image, byte[] Mask, Ellipse Head, double PixelMm);

    public static Sample Generate(int seed, int height = 128, int width = 192)
    {
        var rng = new Random(seed);
        double U(double lo, double hi) => lo + rng.NextDouble() * (hi - lo);
        double apexX = width / 2.0, apexY = -0.15 * height, fan = 0.62, reach = 1.3 * height;
        // the whole head inside the image and the fan (rejection sampling, shrinking the head if it cannot fit)
        Ellipse head = null!;
        for (int attempt = 0; ; attempt++)
        {
            double shrink = Math.Pow(0.97, attempt / 20);
            double a = U(0.20, 0.34) * height * shrink, b = a * U(0.72, 0.88);
            head = new Ellipse(U(a + 3, width - a - 3), U(a + 3, height - a - 3), a, b, U(-Math.PI / 2, Math.PI / 2));
            if (head.Points(72).All(p => p.X > 2 && p.X < width - 3 && p.Y > 2 && p.Y < height - 3 &&
                                         Math.Abs(Math.Atan2(p.X - apexX, p.Y - apexY)) < fan - 0.05)) break;
        }
        double cx = head.Cx, cy = head.Cy, a_ = head.A, b_ = head.B;
        double skull = U(2.0, 3.5) / b_;                // skull thickness in normalised radius
        double px = U(0.5, 1.0);
        // echo drop-outs: up to three angular gaps in the skull, where the boundary must be inferred from its shape
        var gaps = Enumerable.Range(0, rng.Next(0, 4)).Select(_ => (centre: U(-Math.PI, Math.PI), half: U(0.15, 0.5))).ToArray();
        // distractors outside the head: bright curved echoes (uterine wall, placenta, limbs) that look like skull pieces
        var distractors = Enumerable.Range(0, rng.Next(1, 4)).Select(_ =>
            (e: new Ellipse(U(0, width), U(0, height), U(0.15, 0.5) * height, U(0.1, 0.3) * height, U(-Math.PI / 2, Math.PI / 2)),
             from: U(-Math.PI, Math.PI), span: U(0.5, 1.5), level: U(0.45, 0.8))).ToArray();
        // the head's angular span and distance seen from the probe, for the shadow
        var span = head.Points(90).Select(p => Math.Atan2(p.X - apexX, p.Y - apexY)).ToArray();
        double spanLo = span.Min(), spanHi = span.Max(), headDist = Math.Sqrt((cx - apexX) * (cx - apexX) + (cy - apexY) * (cy - apexY));
        var raw = new double[height * width];
        var mask = head.Rasterize(height, width);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                double dx = x - apexX, dy = y - apexY, dist = Math.Sqrt(dx * dx + dy * dy), th = Math.Atan2(dx, dy);
                if (Math.Abs(th) > fan || dist > reach) continue;   // outside the fan: black
                double r = head.Radius(x, y), v;
                if (r <= 1)
                {
                    double c = Math.Cos(head.Angle), s = Math.Sin(head.Angle), u = (x - cx) * c + (y - cy) * s, w = -(x - cx) * s + (y - cy) * c;
                    double phi = Math.Atan2(w / b_, u / a_);
                    bool gap = gaps.Any(g => Math.Abs(Math.IEEERemainder(phi - g.centre, 2 * Math.PI)) < g.half);
                    v = r >= 1 - skull && !gap ? 0.85 : 0.24 + 0.05 * Math.Sin(u * 0.35) * Math.Cos(w * 0.3);
                    if (Math.Abs(w) < 0.8 && Math.Abs(u) < 0.8 * a_) v = Math.Max(v, 0.6);   // midline echo
                }
                else
                {
                    v = 0.15 + 0.04 * Math.Sin(0.05 * x + 0.07 * y);
                    foreach (var d in distractors)
                    {
                        double rd = d.e.Radius(x, y);
                        if (Math.Abs(rd - 1) * d.e.B > 1.5) continue;
                        double c2 = Math.Cos(d.e.Angle), s2 = Math.Sin(d.e.Angle);
                        double ang = Math.Atan2(-(x - d.e.Cx) * s2 + (y - d.e.Cy) * c2, (x - d.e.Cx) * c2 + (y - d.e.Cy) * s2);
                        if (Math.Abs(Math.IEEERemainder(ang - d.from, 2 * Math.PI)) < d.span / 2) v = Math.Max(v, d.level);
                    }
                    if (th > spanLo && th < spanHi && dist > headDist) v *= 0.5;        // acoustic shadow behind the head
                }
                v *= 0.8 + 0.35 * (1 - dist / reach);                                  // depth gain
                raw[y * width + x] = v;
            }
        // correlated multiplicative speckle: Rayleigh noise (mean 1) smoothed over 3x3
        var noise = new double[height * width];
        for (int i = 0; i < noise.Length; i++) noise[i] = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) / Math.Sqrt(Math.PI / 2);
        var image = new float[height * width];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                double s = 0; int k = 0;
                for (int yy = Math.Max(0, y - 1); yy <= Math.Min(height - 1, y + 1); yy++)
                    for (int xx = Math.Max(0, x - 1); xx <= Math.Min(width - 1, x + 1); xx++) { s += noise[yy * width + xx]; k++; }
                double speckle = 0.4 + 0.6 * (s / k) * 1.0 + 0.25 * (noise[y * width + x] - 1);
                image[y * width + x] = (float)Math.Clamp(raw[y * width + x] * speckle, 0, 1);
            }
        return new Sample(image, mask, head, px);
    }

    /// <summary>Writes <paramref name="annotated"/> training images (with outlines and the pixel-size/HC table) and
    /// <paramref name="unannotated"/> test-set images (pixel sizes only) in the HC18 layout.</summary>
    public static void WriteHc18(string root, int annotated = 120, int unannotated = 0, int height = 128, int width = 192, int seed = 18)
    {
        var train = Path.Combine(root, "training_set");
        Directory.CreateDirectory(train);
        var rows = new List<string> { "filename,pixel size(mm),head circumference (mm)" };
        for (int i = 0; i < annotated; i++)
        {
            var s = Generate(seed * 100_003 + i, height, width);
            // a few subjects have a second image, named like HC18's 010_2HC.png
            string name = i % 10 == 9 ? $"{i - 1:000}_2HC" : $"{i:000}_HC";
            Png.WriteImage(Path.Combine(train, name + ".png"), s.Image, height, width);
            Png.WriteMask(Path.Combine(train, name + "_Annotation.png"), Hc18Dataset.DrawOutline(s.Head, height, width), height, width);
            var hc = s.Head.Perimeter * s.PixelMm;   // the true ellipse, as HC18 derives HC from the annotated ellipse
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"{name}.png,{s.PixelMm:0.000000},{hc:0.00}"));
        }
        AtomicFile.WriteAllText(Path.Combine(root, Hc18Dataset.TrainingCsv), string.Join("\n", rows) + "\n");
        if (unannotated <= 0) return;
        var test = Path.Combine(root, "test_set");
        Directory.CreateDirectory(test);
        var testRows = new List<string> { "filename,pixel size(mm)" };
        for (int i = 0; i < unannotated; i++)
        {
            var s = Generate(seed * 100_003 + 50_000 + i, height, width);
            Png.WriteImage(Path.Combine(test, $"{i:000}_HC.png"), s.Image, height, width);
            testRows.Add(string.Create(CultureInfo.InvariantCulture, $"{i:000}_HC.png,{s.PixelMm:0.000000}"));
        }
        AtomicFile.WriteAllText(Path.Combine(root, Hc18Dataset.TestCsv), string.Join("\n", testRows) + "\n");
    }
}
