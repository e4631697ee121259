using System.Diagnostics;
using System.Text.Json;

namespace SemiSeg.Tests.Runtime;

/// <summary>`-p:TorchBackend=cuda` selects TorchSharp's CUDA bundle instead of the CPU one. The CUDA packages are not
/// served where this project is built and tested, so this checks what MSBuild evaluates (the package references of
/// src/SemiSeg), not a restore.</summary>
public class TorchBackendSwitchTests
{
    static string Project()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SemiSeg.sln"))) return Path.Combine(d.FullName, "src", "SemiSeg", "SemiSeg.csproj");
        throw new InvalidOperationException("SemiSeg.sln not found above the test binary");
    }

    static (int Code, string Text) Msbuild(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("msbuild"); psi.ArgumentList.Add(Project()); psi.ArgumentList.Add("-nologo");
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["MSBUILDNOINPROCNODE"] = "1";
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, text + err.Result);
    }

    static List<(string Id, string Version)> TorchReferences(string backend)
    {
        var args = new List<string> { "-getItem:PackageReference" };
        if (backend != "") args.Add("-p:TorchBackend=" + backend);
        var (code, text) = Msbuild(args.ToArray());
        Assert.True(code == 0, text);
        using var doc = JsonDocument.Parse(text[text.IndexOf('{')..]);
        return doc.RootElement.GetProperty("Items").GetProperty("PackageReference").EnumerateArray()
            .Select(e => (e.GetProperty("Identity").GetString()!, e.GetProperty("Version").GetString()!))
            .Where(r => r.Item1.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase)).ToList();
    }

    [Theory]
    [InlineData("", "TorchSharp-cpu")]
    [InlineData("cpu", "TorchSharp-cpu")]
    [InlineData("cuda", "TorchSharp-cuda-linux")]
    public void TheBackendPropertySelectsOneTorchSharpBundle(string backend, string expected)
    {
        var refs = TorchReferences(backend);
        var (id, version) = Assert.Single(refs);
        Assert.Equal(expected, id);
        Assert.Equal("0.107.0", version); // one engine version for both bundles (libtorch 2.10)
    }

    [Fact]
    public void AnUnknownBackendIsRefusedByName()
    {
        var (code, text) = Msbuild("-t:CollectPackageReferences", "-p:TorchBackend=rocm");
        Assert.NotEqual(0, code);
        Assert.Contains("TorchBackend 'rocm' is not known", text);
    }
}
