namespace SemiSeg.Data;

/// <summary>
/// Checks a run's data before its first iteration, so a broken file fails at the start rather than when it is
/// first sampled or at the first validation (with nothing saved): every training, unlabeled and test file is opened
/// at header level (readable, sizes within the file), and every validation case is read in full through the
/// reader the run uses, with its label range checked. Errors are the readers' one-line messages naming the file.
/// </summary>
public static class DataCheck
{
    public static void Run(VolumeSplit split)
    {
        var reader = split.Reader;
        var headerOnly = split.Labeled.Concat(split.Unlabeled).Concat(split.Test).ToList();
        var files = headerOnly.SelectMany(c => c.LabelPath is string l && l != c.ImagePath ? new[] { c.ImagePath, l } : new[] { c.ImagePath })
            .Distinct().ToList();
        // a layout with its own reader may assemble a case from other files (ACDC volumes from their slices):
        // there only the files that exist are checked, the rest is the reader's to find
        bool casesAreFiles = ReferenceEquals(split.Reader, VolumeSplit.ReadFiles);
        foreach (var f in files)
            if (casesAreFiles || File.Exists(f)) VolumeIO.CheckHeader(f);
        foreach (var c in split.Val)
            reader(c).ValidateLabel(split.NumClasses, c.LabelPath ?? c.ImagePath);
    }
}
