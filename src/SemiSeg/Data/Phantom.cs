namespace SemiSeg.Data;

/// <summary>
/// A synthetic cardiac-like short-axis cine phantom, the built-in default dataset: per volume a stack of slices with
/// a bright round LV blood pool (label 3), a dark myocardium ring around it (label 2) and a bright RV crescent beside it
/// (label 1), on textured background with Gaussian noise. Position, size, wall thickness, RV size and contrast vary
/// per case, and the heart shrinks from base to apex along the stack. Labels follow ACDC (0 BG, 1 RV, 2 Myo, 3 LV).
/// </summary>
public static class CardiacPhantom
{
    public static readonly string[] ClassNames = { "background", "RV", "Myo", "LV" };

    public static Volume Generate(string name, int seed, int depth = 8, int size = 96, double noise = 0.06)
    {
        var rng = new Random(seed);
        int hw = size * size;
        var img = new float[depth * hw];
        var lab = new byte[depth * hw];
        double cx = size * (0.42 + 0.16 * rng.NextDouble()), cy = size * (0.42 + 0.16 * rng.NextDouble());
        double rBase = size * (0.10 + 0.05 * rng.NextDouble());
        double wall = size * (0.035 + 0.02 * rng.NextDouble());
        double rvScale = 1.25 + 0.35 * rng.NextDouble();
        double rvAngle = Math.PI * (0.85 + 0.3 * rng.NextDouble()); // RV sits to the left of the LV
        double contrast = 0.8 + 0.4 * rng.NextDouble();
        // Low-frequency background texture: a few random Gaussian blobs shared by the stack.
        var blobs = Enumerable.Range(0, 6).Select(_ => (x: rng.NextDouble() * size, y: rng.NextDouble() * size, s: size * (0.08 + 0.15 * rng.NextDouble()), a: 0.05 + 0.15 * rng.NextDouble())).ToArray();
        for (int z = 0; z < depth; z++)
        {
            double t = depth == 1 ? 0 : (double)z / (depth - 1);
            double r = rBase * (1.0 - 0.55 * t);          // base → apex
            double rv = r * rvScale * (1.0 - 0.5 * t);
            double rvx = cx + Math.Cos(rvAngle) * (r + wall + rv * 0.55), rvy = cy + Math.Sin(rvAngle) * (r + wall + rv * 0.55);
            double dxz = (rng.NextDouble() - 0.5) * 1.5, dyz = (rng.NextDouble() - 0.5) * 1.5;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    int i = z * hw + y * size + x;
                    double dl = Math.Sqrt((x - cx - dxz) * (x - cx - dxz) + (y - cy - dyz) * (y - cy - dyz));
                    double dr = Math.Sqrt((x - rvx) * (x - rvx) + (y - rvy) * (y - rvy));
                    double v = 0.12;
                    foreach (var b in blobs) v += b.a * Math.Exp(-((x - b.x) * (x - b.x) + (y - b.y) * (y - b.y)) / (2 * b.s * b.s));
                    byte l = 0;
                    if (dl <= r) { l = 3; v = 0.85; }
                    else if (dl <= r + wall) { l = 2; v = 0.30; }
                    else if (dr <= rv && z < depth - 1) { l = 1; v = 0.70; }
                    img[i] = (float)(v * contrast + noise * Gaussian(rng));
                    lab[i] = l;
                }
        }
        // min-max to [0, 1] per volume, as the ACDC preprocessing does
        float mn = img.Min(), mx = img.Max();
        for (int i = 0; i < img.Length; i++) img[i] = (img[i] - mn) / (mx - mn);
        return new Volume(name, depth, size, size, img, lab) { Spacing = new[] { 10.0, 1.5, 1.5 } };
    }

    static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>
    /// Writes a phantom dataset in the folder layout <see cref="CustomDataset"/> reads: imagesTr/ (all training
    /// volumes) with labelsTr/ for the first <paramref name="labeled"/> only (the rest are unlabeled), imagesVal/ +
    /// labelsVal/, imagesTs/ + labelsTs/, as .nii.gz with spacing.
    /// </summary>
    public static void WriteDataset(string root, int labeled = 4, int unlabeled = 12, int val = 3, int test = 4, int depth = 8, int size = 96, int seed = 7)
    {
        int k = 0;
        void Put(string imgDir, string? labDir, int count, string prefix)
        {
            for (int i = 0; i < count; i++, k++)
            {
                var name = $"{prefix}{i:000}";
                var v = Generate(name, seed * 1000 + k, depth, size);
                Nifti.Write(Path.Combine(root, imgDir, name + ".nii.gz"), v, asLabel: false);
                if (labDir != null) Nifti.Write(Path.Combine(root, labDir, name + ".nii.gz"), v, asLabel: true);
            }
        }
        Put("imagesTr", "labelsTr", labeled, "heart_l");
        Put("imagesTr", null, unlabeled, "heart_u");
        Put("imagesVal", "labelsVal", val, "heart_v");
        Put("imagesTs", "labelsTs", test, "heart_t");
    }
}
