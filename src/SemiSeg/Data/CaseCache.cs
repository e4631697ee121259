using System.Collections.Concurrent;
using System.Diagnostics;
using SemiSeg.Runtime;

namespace SemiSeg.Data;

/// <summary>Thread-safe lazy cache of decoded cases, so each file is read once per run.</summary>
public sealed class CaseCache
{
    readonly ConcurrentDictionary<string, Lazy<Volume>> _cache = new();
    readonly int _numClasses;
    readonly Func<CaseRef, Volume> _read;

    /// <param name="read">How a case is read as (D, H, W); default <see cref="VolumeIO.Read"/>.</param>
    public CaseCache(int numClasses, Func<CaseRef, Volume>? read = null)
    {
        _numClasses = numClasses;
        _read = read ?? (c => VolumeIO.Read(c));
    }

    public Volume Get(CaseRef c) => _cache.GetOrAdd(c.Name + "|" + c.ImagePath + "|" + (c.LabelPath ?? ""), _ => new Lazy<Volume>(() =>
    {
        var v = _read(c);
        v.ValidateLabel(_numClasses, c.LabelPath ?? c.ImagePath);
        return v;
    })).Value;
}
