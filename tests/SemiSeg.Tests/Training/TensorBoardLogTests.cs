using SemiSeg.Evaluation;
using SemiSeg.Training;

namespace SemiSeg.Tests.Training;

/// <summary>The event file is read back with TensorBoard's own record framing (length, masked CRC, Event protobuf,
/// masked CRC) and protobuf classes, as TensorBoard reads it.</summary>
public class TensorBoardLogTests
{
    internal static List<Tensorboard.Event> ReadEvents(string file)
    {
        var events = new List<Tensorboard.Event>();
        using var s = File.OpenRead(file);
        using var r = new BinaryReader(s);
        while (s.Position < s.Length)
        {
            long n = r.ReadInt64();
            r.ReadUInt32();                                   // masked CRC of the length
            events.Add(Tensorboard.Event.Parser.ParseFrom(r.ReadBytes(checked((int)n))));
            r.ReadUInt32();                                   // masked CRC of the data
        }
        return events;
    }

    [Fact]
    public void ScalarsValidationAndPicturesReachTheEventFileWithStepsAndWallTime()
    {
        using var dir = new TempDir();
        long before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var tb = new TensorBoardLog(dir.Path);
        tb.Training(50, new[] { ("loss", 0.5), ("sup", 0.25), ("lr", 0.01), ("nan", double.NaN) });
        tb.Validation(100, 0.75, 3.5, new[] { ("RV", 0.7), ("LV", 0.8) });
        var png = OverlayPanel.Render(new float[16 * 16], 16, 16, new byte[16 * 16], new byte[16 * 16], new[] { "bg", "a" }, "t");
        tb.Image("val/case1", png, 100);
        var file = Assert.Single(Directory.GetFiles(tb.Folder, "events.out.tfevents.*"));
        Assert.Empty(Directory.GetFiles(tb.Folder, "*.png"));  // the picture's temporary file is gone
        var events = ReadEvents(file).Where(e => e.Summary is not null).ToList();
        var scalars = events.SelectMany(e => e.Summary.Value.Where(v => v.ValueCase == Tensorboard.Summary.Types.Value.ValueOneofCase.SimpleValue)
            .Select(v => (v.Tag, e.Step, (double)v.SimpleValue))).ToList();
        Assert.Equal(new (string, long, double)[]
        {
            ("train/loss", 50, 0.5), ("train/sup", 50, 0.25), ("train/lr", 50, (float)0.01),   // NaN values are not written
            ("val/mean_dice", 100, 0.75), ("val/mean_hd95", 100, 3.5), ("val/dice_RV", 100, (float)0.7), ("val/dice_LV", 100, (float)0.8),
        }, scalars);
        var image = Assert.Single(events.SelectMany(e => e.Summary.Value).Where(v => v.ValueCase == Tensorboard.Summary.Types.Value.ValueOneofCase.Image));
        Assert.Equal("images/val/case1", image.Tag);
        var decoded = StbImageSharp.ImageResult.FromMemory(image.Image.EncodedImageString.ToByteArray(), StbImageSharp.ColorComponents.RedGreenBlue);
        var original = StbImageSharp.ImageResult.FromMemory(png, StbImageSharp.ColorComponents.RedGreenBlue);
        Assert.Equal((original.Width, original.Height), (decoded.Width, decoded.Height));
        Assert.All(events, e => Assert.InRange(e.WallTime, before, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1));
    }
}
