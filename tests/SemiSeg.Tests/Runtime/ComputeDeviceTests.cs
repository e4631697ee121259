using System.Reflection;
using System.Text.Json.Nodes;
using SemiSeg.Data;
using SemiSeg.Inference;
using SemiSeg.Methods;
using SemiSeg.Methods.Volume;
using SemiSeg.Models;
using SemiSeg.Runtime;
using SemiSeg.Tests.Cli;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Runtime;

/// <summary>`--device`: what it resolves to, its one error where CUDA cannot be used, that every method's state moves
/// with its modules, that checkpoints load onto a module on another device, and that the run records its device.
/// "Another device" is libtorch's meta device here (no GPU on CI): moving to it and copying into it exercise the same
/// TorchSharp paths a CUDA device does.</summary>
public class ComputeDeviceTests
{
    static readonly Device Meta = new(DeviceType.META);

    [Fact]
    public void ResolvesCpuAutoAndRefusesMalformedSpecs()
    {
        Assert.Equal(DeviceType.CPU, ComputeDevice.Resolve("cpu").type);
        Assert.Equal(DeviceType.CPU, ComputeDevice.Resolve(" CPU ").type);
        var auto = ComputeDevice.Resolve("auto");
        Assert.Equal(ComputeDevice.CudaAvailable() ? DeviceType.CUDA : DeviceType.CPU, auto.type);
        Assert.Equal(auto.type, ComputeDevice.Resolve(null).type);
        foreach (var bad in new[] { "gpu", "cpu:1", "cuda:", "cuda:x", "auto:0", "cuda:-1" })
        {
            var e = Assert.Throws<ArgumentException>(() => ComputeDevice.Resolve(bad));
            Assert.Contains($"'{bad}'", e.Message);
            Assert.Contains("expected cpu, cuda, cuda:N or auto", e.Message);
        }
    }

    [SkippableFact]
    public void ExplicitCudaWithoutCudaFailsWithOneMessageBeforeAnythingIsWritten()
    {
        Skip.If(ComputeDevice.CudaAvailable(), "this machine has CUDA: the refusal cannot be checked here");
        foreach (var spec in new[] { "cuda", "cuda:1" })
        {
            var e = Assert.Throws<ArgumentException>(() => ComputeDevice.Resolve(spec));
            Assert.Contains(ComputeDevice.Backend == "cpu" ? "TorchSharp-cpu" : "no usable CUDA device", e.Message);
        }
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 1, unlabeled: 0, val: 0, test: 0, depth: 2, size: 32);
        foreach (var args in new[]
        {
            new[] { "train", "--data", t["data"], "--output", t["run"], "--iterations", "1", "--patch-size", "32", "--device", "cuda" },
            new[] { "pretrain", "--data", t["data"], "--output", t["pre"], "--iterations", "1", "--patch-size", "32", "--device", "cuda:0" },
            new[] { "bench", "--size", "32", "--batch", "2", "--iters", "1", "--device", "cuda" },
        })
        {
            var (code, _, err) = CliTests.Run(args);
            Assert.Equal(2, code);
            Assert.Single(err.Trim().Split('\n'));
            Assert.Contains("--device cuda", err);
        }
        Assert.False(Directory.Exists(t["run"]));
        Assert.False(Directory.Exists(t["pre"]));
    }

    public static IEnumerable<object[]> Methods() =>
        MethodRegistry.Slices.Select(e => new object[] { e.Name, false })
            .Concat(MethodRegistry.Volumes.Select(v => new object[] { v.Name, true }));

    /// <summary>What the trainer does on a GPU, for every method: build on the host, move the stateful modules. Every
    /// parameter and buffer then lives on the device, frozen (EMA) weights stay frozen, the optimizer's parameters are
    /// the moved ones, and no tensor the method or its modules hold is left on the host.</summary>
    [Theory]
    [MemberData(nameof(Methods))]
    public void PlacingAMethodMovesAllItsState(string name, bool volume)
    {
        using var scope = NewDisposeScope();
        using ITrainableMethod method = volume
            ? MethodRegistry.GetVolume(name).Create(new VolumeMethodContext(new Net3DConfig { Filters = 4 }, new UNetConfig { NumClasses = 2 }, new MethodSettings(null)))
            : MethodRegistry.Get(name).Create(new UNetConfig { NumClasses = 3 }, new MethodSettings(null));
        var modules = method.StatefulModules.Append(method.InferenceModule).ToList();
        var trains = modules.Select(m => m.named_parameters().Select(p => p.parameter.requires_grad).ToArray()).ToList();
        ComputeDevice.Place(modules, Meta);
        for (int i = 0; i < modules.Count; i++)
        {
            var m = modules[i];
            Assert.Equal(trains[i], m.named_parameters().Select(p => p.parameter.requires_grad).ToArray()); // frozen (EMA) weights stay frozen
            foreach (var (n, p) in m.named_parameters()) Assert.Equal(DeviceType.META, p.device_type);
            foreach (var (n, b) in m.named_buffers()) Assert.True(b.device_type == DeviceType.META, $"{name}: buffer {n} stayed on {b.device_type}");
        }
        Assert.All(method.TrainableModules.SelectMany(m => m.parameters()), p => Assert.Equal(DeviceType.META, p.device_type));
        var left = HostTensors(method);
        Assert.True(left.Count == 0, $"{name} ({(volume ? "3D" : "2D")}) keeps tensors on the host after the move: {string.Join(", ", left)}");
    }

    static List<string> HostTensors(object root) =>
        HeldTensors.Of(root).Where(h => h.tensor.device_type == DeviceType.CPU).Select(h => $"{h.path} [{string.Join(",", h.tensor.shape)}]").ToList();

    /// <summary>A checkpoint written on the host resumes a method whose modules are on another device: the weights
    /// are copied into the moved modules and the optimizer's state follows the parameters; a network loaded for
    /// inference is read on the host and moved.</summary>
    [Fact]
    public void CheckpointsLoadOntoAnotherDevice()
    {
        using var t = new TempDir();
        using var scope = NewDisposeScope();
        var settings = new MethodSettings(null);
        using var source = MethodRegistry.Get("mean-teacher").Create(new UNetConfig { NumClasses = 2 }, settings);
        using var opt = new TrainOptions().CreateOptimizer(source.TrainableModules.SelectMany(m => m.parameters()).ToList());
        var x = rand(4, 1, 32, 32); var y = zeros(new long[] { 2, 32, 32 }, ScalarType.Int64);
        Trainer.Step(source, opt, x, y, 2, new TrainingContext(0, 10, 0.01));
        var meta = new CheckpointMeta { Method = "mean-teacher", Network = new UNetConfig { NumClasses = 2 }, PatchHeight = 32, PatchWidth = 32, ClassNames = new[] { "bg", "fg" } };
        Checkpoint.Save(t["last.ckpt"], meta, source, opt);

        using var target = MethodRegistry.Get("mean-teacher").Create(new UNetConfig { NumClasses = 2 }, settings);
        ComputeDevice.Place(target.StatefulModules, Meta);
        using var opt2 = new TrainOptions().CreateOptimizer(target.TrainableModules.SelectMany(m => m.parameters()).ToList());
        Checkpoint.Restore(t["last.ckpt"], target, opt2, "mean-teacher");
        Assert.All(target.StatefulModules.SelectMany(m => m.parameters()), p => Assert.Equal(DeviceType.META, p.device_type));
        int stateTensors = 0;
        foreach (var st in opt2.state_dict().State)
            foreach (var f in st.GetType().GetFields(BindingFlags.Public | BindingFlags.Instance))
                if (f.GetValue(st) is Tensor s && !s.IsInvalid) { Assert.Equal(DeviceType.META, s.device_type); stateTensors++; }
        Assert.True(stateTensors > 0, "the SGD momentum buffers were restored");

        var (inferer, _) = CheckpointFile.LoadInferer(t["last.ckpt"], device: Meta);
        using (inferer)
        {
            var net = (nn.Module)typeof(SliceWiseInferer).GetField("_net", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(inferer)!;
            Assert.Equal(DeviceType.META, ComputeDevice.Of(net).type);
        }
    }

    /// <summary>The in-place reader used for modules off the CPU, checked where values can be read: the same weights
    /// as TorchSharp's own load, in the same parameter objects.</summary>
    [Fact]
    public void InPlaceLoadReadsTorchSharpsFormatIntoTheExistingTensors()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(3);
        using var a = new UNet2D(new UNetConfig { NumClasses = 2 });
        using var b = new UNet2D(new UNetConfig { NumClasses = 2 });
        foreach (var p in b.parameters()) p.requires_grad_(false);
        var before = b.parameters().ToArray();
        var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) a.save(w);
        ms.Position = 0;
        using (var r = new BinaryReader(ms, System.Text.Encoding.UTF8, leaveOpen: true)) Checkpoint.LoadInPlace(r, b);
        Assert.Equal(ms.Length, ms.Position); // every entry read
        var after = b.parameters().ToArray();
        for (int i = 0; i < before.Length; i++) Assert.Same(before[i], after[i]);
        foreach (var ((n, x), (_, y)) in a.state_dict().Zip(b.state_dict())) Assert.True(x.allclose(y, rtol: 0, atol: 0), n);
        Assert.All(after, p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void TheRunRecordsItsDevice()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 1, unlabeled: 0, val: 0, test: 0, depth: 2, size: 32);
        var (code, _, err) = CliTests.Run("train", "--data", t["data"], "--output", t["run"], "--iterations", "1", "--patch-size", "32",
            "--batch-size", "2", "--labeled-bs", "2", "--device", "cpu", "--quiet");
        Assert.True(code == 0, err);
        var entry = JsonNode.Parse(File.ReadAllText(t["run/provenance.json"]))!["runs"]![0]!["device"]!;
        Assert.Equal("cpu", entry["type"]!.GetValue<string>());
        Assert.Equal("cpu", entry["backend"]!.GetValue<string>());
        Assert.Equal("cpu", JsonNode.Parse(File.ReadAllText(t["run/config.json"]))!["device"]!.GetValue<string>());
        Assert.Contains("device cpu", File.ReadAllText(t["run/train.log"]));
    }
}
