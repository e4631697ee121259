namespace SemiSeg.Runtime;

/// <summary>Deterministic seed mixing (SplitMix64). System.HashCode is randomised per process, so it must not be
/// used for anything that has to repeat across runs.</summary>
public static class Seeds
{
    public static int Mix(params long[] parts)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (var p in parts)
        {
            h ^= unchecked((ulong)p);
            h += 0x9E3779B97F4A7C15UL;
            ulong z = h;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            h = z ^ (z >> 31);
        }
        return (int)(h & 0x7FFFFFFF);
    }
}
