namespace SemiSeg.Runtime;

/// <summary>Deterministic seed mixing (SplitMix64). System.HashCode is randomised per process, so it must not be
/// used for anything that has to repeat across runs.</summary>
public static class Seeds
{
    public static int Mix(params long[] parts)
    {
        ulong h = SplitMix64.Golden;
        foreach (var p in parts)
        {
            h ^= unchecked((ulong)p);
            h = SplitMix64.Mix(h + SplitMix64.Golden);
        }
        return (int)(h & 0x7FFFFFFF);
    }
}
