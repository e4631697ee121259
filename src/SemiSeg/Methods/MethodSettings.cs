using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods;

/// <summary>
/// Method hyper-parameters as key=value pairs (from --param or a config file) over typed defaults. Unknown keys are
/// an error naming the method's known keys, so a typo never silently falls back to a default.
/// </summary>
public sealed class MethodSettings
{
    readonly Dictionary<string, string> _values;
    readonly HashSet<string> _read = new(StringComparer.OrdinalIgnoreCase);
    readonly Dictionary<string, string> _effective = new(StringComparer.OrdinalIgnoreCase);

    public MethodSettings(IReadOnlyDictionary<string, string>? values = null) =>
        _values = new Dictionary<string, string>(values ?? new Dictionary<string, string>(), StringComparer.OrdinalIgnoreCase);

    public static MethodSettings Parse(IEnumerable<string> pairs)
    {
        var d = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var p in pairs)
        {
            int eq = p.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"--param '{p}': expected key=value");
            d[p[..eq].Trim()] = p[(eq + 1)..].Trim();
        }
        return new MethodSettings(d);
    }

    public double Double(string key, double fallback)
    {
        _read.Add(key);
        double v = fallback;
        if (_values.TryGetValue(key, out var s) && (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out v) || !double.IsFinite(v)))
            throw new ArgumentException($"method parameter {key}='{s}' is not a finite number");
        _effective[key] = v.ToString(CultureInfo.InvariantCulture);
        return v;
    }

    public long Long(string key, long fallback)
    {
        _read.Add(key);
        long v = fallback;
        if (_values.TryGetValue(key, out var s) && !long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v))
            throw new ArgumentException($"method parameter {key}='{s}' is not an integer");
        _effective[key] = v.ToString(CultureInfo.InvariantCulture);
        return v;
    }

    public string String(string key, string fallback)
    {
        _read.Add(key);
        var v = _values.TryGetValue(key, out var s) ? s : fallback;
        _effective[key] = v;
        return v;
    }

    public bool Bool(string key, bool fallback)
    {
        _read.Add(key);
        bool v = fallback;
        if (_values.TryGetValue(key, out var s) && !bool.TryParse(s, out v))
            throw new ArgumentException($"method parameter {key}='{s}' is not true/false");
        _effective[key] = v ? "true" : "false";
        return v;
    }

    /// <summary>Throws if a given key was never read by the method.</summary>
    public void EnsureAllUsed(string method)
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"method '{method}' has no parameter {string.Join(", ", unknown)}; its parameters are {string.Join(", ", _read.OrderBy(k => k))}");
    }

    /// <summary>The key=value pairs given (before defaults).</summary>
    public IReadOnlyDictionary<string, string> Given => _values;

    /// <summary>The values in force (defaults and overrides), for config.json.</summary>
    public IReadOnlyDictionary<string, string> Effective => _effective;
}
