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
        return new Volume(name, depth, size, size, img, lab) { Spacing = new[] { 10.0, 1.5, 1.5 }, SpacingSource = "the phantom's stated voxel size" };
    }

    /// <summary>A standard normal draw (Box–Muller), shared by the phantoms.</summary>
    internal static double Gaussian(Random rng)
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

/// <summary>
/// A synthetic 3D left-atrium-like phantom in the LA protocol's layout (train.list, test.list, NAME/mri_norm2.h5 with
/// (X, Y, Z) <c>image</c>/<c>label</c>), so the whole 3D path — reader, crops, 3D methods, sliding window — runs without a
/// download. Each volume: a bright atrium (an ellipsoid body, an overlapping appendage lobe and 2–3 pulmonary-vein-like
/// tubes, label 1) beside an equally bright unlabeled aorta-like tube and two blobs (what makes the task need shape
/// context), on a smooth background with a bias field and Gaussian noise, normalised to zero mean and unit variance
/// like mri_norm2.
/// </summary>
public static class AtriumPhantom
{
    public static Volume Generate(string name, int seed, int depth = 40, int size = 64, double noise = 0.3)
    {
        var rng = new Random(seed);
        int d = depth, h = size, w = size;
        var img = new float[d * h * w]; var lab = new byte[img.Length];
        double R(double a, double b) => a + (b - a) * rng.NextDouble();
        // atrium body and appendage (z, y, x) centres and radii
        var c = (z: d * R(0.4, 0.6), y: h * R(0.4, 0.6), x: w * R(0.4, 0.6));
        var r = (z: d * R(0.16, 0.24), y: h * R(0.14, 0.22), x: w * R(0.14, 0.22));
        var c2 = (z: c.z + r.z * R(-0.5, 0.5), y: c.y + r.y * R(0.6, 1.0) * (rng.Next(2) * 2 - 1), x: c.x + r.x * R(0.4, 0.9));
        double r2 = Math.Min(r.y, r.x) * R(0.35, 0.55);
        // veins: tubes from the body's centre outward along random in-plane directions
        var veins = Enumerable.Range(0, rng.Next(2, 4)).Select(_ =>
        {
            double a = R(0, 2 * Math.PI), el = R(-0.4, 0.4);
            return (dz: Math.Sin(el), dy: Math.Cos(el) * Math.Sin(a), dx: Math.Cos(el) * Math.Cos(a), rad: R(1.6, 2.8), len: R(1.2, 1.7));
        }).ToArray();
        // distractors: an aorta-like tube along z and a blob, both bright, unlabeled
        var ao = (y: h * (rng.NextDouble() < 0.5 ? R(0.12, 0.25) : R(0.75, 0.88)), x: w * R(0.15, 0.85), rad: R(3.0, 5.0));
        var blobs = Enumerable.Range(0, 2).Select(_ => (z: d * R(0.2, 0.8), y: h * R(0.1, 0.9), x: w * R(0.1, 0.9), rad: R(3.5, 6.0))).ToArray();
        double bright = R(0.75, 0.95), bgLevel = R(0.2, 0.35);
        var bias = (z: R(-0.15, 0.15), y: R(-0.15, 0.15), x: R(-0.15, 0.15));
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int i = (z * h + y) * w + x;
                    double ez = (z - c.z) / r.z, ey = (y - c.y) / r.y, ex = (x - c.x) / r.x;
                    bool inAtrium = ez * ez + ey * ey + ex * ex <= 1
                                    || Sq(z - c2.z) + Sq(y - c2.y) + Sq(x - c2.x) <= r2 * r2;
                    if (!inAtrium)
                        foreach (var v in veins)
                        {
                            // distance from the ray centre + t·dir (scaled to the body's radii), t in [0, len]
                            double pz = (z - c.z) / r.z, py = (y - c.y) / r.y, px = (x - c.x) / r.x;
                            double t = Math.Clamp(pz * v.dz + py * v.dy + px * v.dx, 0, v.len);
                            double qz = (pz - t * v.dz) * r.z, qy = (py - t * v.dy) * r.y, qx = (px - t * v.dx) * r.x;
                            if (qz * qz + qy * qy + qx * qx <= v.rad * v.rad) { inAtrium = true; break; }
                        }
                    double val = bgLevel + 0.08 * Math.Sin(0.21 * x + 0.13 * y) * Math.Cos(0.17 * z);
                    bool distractor = Sq(y - ao.y) + Sq(x - ao.x) <= ao.rad * ao.rad
                                      || blobs.Any(b => Sq(z - b.z) + Sq(y - b.y) + Sq(x - b.x) <= b.rad * b.rad);
                    if (distractor) val = bright;
                    if (inAtrium) { val = bright; lab[i] = 1; }
                    val *= 1 + bias.z * (z - d / 2.0) / d + bias.y * (y - h / 2.0) / h + bias.x * (x - w / 2.0) / w;
                    img[i] = (float)(val + noise * CardiacPhantom.Gaussian(rng));
                }
        double mean = img.Average(), sd = Math.Sqrt(img.Select(v => (v - mean) * (v - mean)).Average());
        for (int i = 0; i < img.Length; i++) img[i] = (float)((img[i] - mean) / sd);
        return new Volume(name, d, h, w, img, lab);
    }

    static double Sq(double v) => v * v;

    /// <summary>Writes <paramref name="train"/> + <paramref name="test"/> phantoms in the LA layout (HDF5 arrays stored
    /// (X, Y, Z) like the challenge's mri_norm2.h5, read back Z-first by <see cref="LeftAtriumDataset"/>).</summary>
    public static void WriteLa(string root, int train = 20, int test = 6, int depth = 40, int size = 64, int seed = 11)
    {
        Directory.CreateDirectory(root);
        var trainNames = Enumerable.Range(0, train).Select(i => $"LA_phantom_{i:000}").ToList();
        var testNames = Enumerable.Range(train, test).Select(i => $"LA_phantom_{i:000}").ToList();
        int k = 0;
        foreach (var n in trainNames.Concat(testNames))
        {
            var v = Generate(n, seed * 1000 + k++, depth, size);
            Hdf5.Write(Path.Combine(root, n, LeftAtriumDataset.FileName), ToXyz(v));
        }
        AtomicFile.WriteAllText(Path.Combine(root, "train.list"), string.Join("\n", trainNames) + "\n");
        AtomicFile.WriteAllText(Path.Combine(root, "test.list"), string.Join("\n", testNames) + "\n");
    }

    /// <summary>(D, H, W) = (Z, X, Y) → the file's (X, Y, Z) order (the inverse of <see cref="LeftAtriumDataset.ZFirst"/>).</summary>
    public static Volume ToXyz(Volume v)
    {
        int nz = v.Depth, nx = v.Height, ny = v.Width;
        var img = new float[v.Image.Length]; var lab = v.Label is null ? null : new byte[img.Length];
        for (int z = 0; z < nz; z++)
            for (int x = 0; x < nx; x++)
                for (int y = 0; y < ny; y++)
                {
                    int src = (z * nx + x) * ny + y, dst = (x * ny + y) * nz + z;
                    img[dst] = v.Image[src];
                    if (lab != null) lab[dst] = v.Label![src];
                }
        return new Volume(v.Name, nx, ny, nz, img, lab);
    }
}
