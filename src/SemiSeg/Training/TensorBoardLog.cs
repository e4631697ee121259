using TorchSharp;

namespace SemiSeg.Training;

/// <summary>
/// TensorBoard event files in RUN/tensorboard/, as SSL4MIS writes them with tensorboardX: every logged loss term and
/// the learning rate under train/ at --log-every, validation metrics under val/ at each validation, and pictures
/// (PNG, e.g. validation overlays) under images/. Written through TorchSharp's SummaryWriter (the event format
/// TensorBoard reads, each event flushed as written) with the wall time of each event, so `tensorboard --logdir
/// runs/` shows curves over steps and over time. A resumed run appends a new event file beside the old one.
/// </summary>
public sealed class TensorBoardLog
{
    readonly TorchSharp.Modules.SummaryWriter _writer;

    public TensorBoardLog(string runFolder)
    {
        Folder = Path.Combine(runFolder, "tensorboard");
        _writer = torch.utils.tensorboard.SummaryWriter(Folder);
    }

    public string Folder { get; }

    static long Now => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public void Scalar(string tag, double value, long step)
    {
        if (double.IsFinite(value)) _writer.add_scalar(tag, (float)value, checked((int)step), Now);
    }

    /// <summary>The values of one log line (name → value) as train/NAME.</summary>
    public void Training(long step, IEnumerable<(string Name, double Value)> values)
    {
        foreach (var (name, value) in values) Scalar("train/" + name, value, step);
    }

    /// <summary>One validation: val/mean_dice, val/mean_hd95 and val/dice_CLASS per class.</summary>
    public void Validation(long step, double meanDice, double meanHd95, IEnumerable<(string Class, double Dice)> classes)
    {
        Scalar("val/mean_dice", meanDice, step);
        Scalar("val/mean_hd95", meanHd95, step);
        foreach (var (c, d) in classes) Scalar("val/dice_" + c, d, step);
    }

    /// <summary>A PNG picture (e.g. an OverlayPanel) under images/TAG.</summary>
    public void Image(string tag, byte[] png, long step)
    {
        var tmp = Path.Combine(Folder, $".image-{Guid.NewGuid():N}.png");
        File.WriteAllBytes(tmp, png);
        try { _writer.add_img("images/" + tag, tmp, checked((int)step), Now); }
        finally { File.Delete(tmp); }
    }
}
