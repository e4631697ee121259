using SemiSeg.Runtime;
using TorchSharp;

namespace SemiSeg.Tests.Models;

public class NnpackWarningTests
{
    [SkippableFact]
    public void NnpackIsQueriedOnceAndSwitchedOffOnlyWhereUnavailable()
    {
        TorchRuntime.Configure();
        Skip.If(!OperatingSystem.IsLinux(), "libtorch's C++ symbols are looked up by their Linux names");
        var available = NnpackWarning.Apply();
        Assert.NotNull(available); // the symbols resolve against the libtorch TorchSharp loaded
        Assert.Equal(available, NnpackWarning.UserEnabled);
        // the switch really reaches libtorch: off and back
        var before = NnpackWarning.UserEnabled;
        NnpackWarning.UserEnabled = false;
        Assert.False(NnpackWarning.UserEnabled);
        using (var x = torch.randn(16, 1, 16, 16))
        using (var w = torch.randn(4, 1, 3, 3))
        using (var y = torch.nn.functional.conv2d(x, w, padding: new long[] { 1, 1 }))
            Assert.Equal(new long[] { 16, 4, 16, 16 }, y.shape);
        NnpackWarning.UserEnabled = before;
        Assert.Equal(before, NnpackWarning.UserEnabled);
    }
}
