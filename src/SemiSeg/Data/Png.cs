using StbImageSharp;
using StbImageWriteSharp;

namespace SemiSeg.Data;

/// <summary>PNG images and masks through StbImageSharp / StbImageWriteSharp (pure C#). Images are read as grey
/// levels scaled to [0, 1]; masks keep their integer values as class indices.</summary>
public static class Png
{
    public static bool IsPngPath(string path) => path.EndsWith(".png", StringComparison.OrdinalIgnoreCase);

    static ImageResult Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"PNG file '{path}' does not exist", path);
        try
        {
            using var s = File.OpenRead(path);
            return ImageResult.FromStream(s, StbImageSharp.ColorComponents.Grey);
        }
        catch (Exception e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"PNG file '{path}': cannot be decoded ({e.Message})", e);
        }
    }

    public static (int H, int W) ReadShape(string path)
    {
        var info = Load(path);
        return (info.Height, info.Width);
    }

    public static Volume ReadImage(string path, string? name = null)
    {
        var r = Load(path);
        var img = new float[r.Width * r.Height];
        for (int i = 0; i < img.Length; i++) img[i] = r.Data[i] / 255f;
        return new Volume(name ?? Path.GetFileNameWithoutExtension(path), 1, r.Height, r.Width, img);
    }

    public static byte[] ReadMask(string path, out int height, out int width)
    {
        var r = Load(path);
        height = r.Height; width = r.Width;
        return r.Data;
    }

    /// <summary>Writes one (H, W) slice of class indices as an 8-bit grey PNG, atomically.</summary>
    public static void WriteMask(string path, byte[] mask, int height, int width) =>
        AtomicFile.Write(path, s => new ImageWriter().WritePng(mask, width, height, StbImageWriteSharp.ColorComponents.Grey, s));

    /// <summary>Writes an image in [0, 1] as an 8-bit grey PNG, atomically.</summary>
    public static void WriteImage(string path, float[] image, int height, int width)
    {
        var b = new byte[image.Length];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)Math.Clamp(MathF.Round(image[i] * 255f), 0, 255);
        AtomicFile.Write(path, s => new ImageWriter().WritePng(b, width, height, StbImageWriteSharp.ColorComponents.Grey, s));
    }
}
