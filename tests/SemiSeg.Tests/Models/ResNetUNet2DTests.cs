using System.Text.Json;
using SemiSeg.Interop;
using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

/// <summary>
/// The TorchVision ResNet-encoder UNet against PyTorch: Fixtures/pretrained/resnet18_state_dict.pth is a state dict with
/// torchvision's resnet18 keys and shapes written by Debian's python3-torch (make_resnet18_state_dict.py; torchvision
/// itself is not installed there, so the script rebuilds the network from torch.nn modules under torchvision's names),
/// and resnet18_expected.json holds PyTorch's layer4 output for a fixed gray image.
/// </summary>
public class ResNetUNet2DTests
{
    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "pretrained", name);
    static UNetConfig Config(Net2DKind kind) => new() { InChannels = 1, NumClasses = 3, Kind = kind };

    [Fact]
    public void ImageNetStyleStateDictLoadsThroughPyBridgeAndEncodesAsPyTorch()
    {
        var expected = JsonDocument.Parse(File.ReadAllText(Fixture("resnet18_expected.json"))).RootElement;
        using var net = (ResNetUNet2D)Segmenter2D.Create(Config(Net2DKind.Resnet18Unet));
        Assert.True(StateDictFile.Recognise(Fixture("resnet18_state_dict.pth")));
        int copied = PretrainedWeights.LoadEncoder(Fixture("resnet18_state_dict.pth"), new[] { net });
        // every tensor of torchvision's resnet18 but the classifier's weight and bias
        Assert.Equal(expected.GetProperty("keys").GetInt32() - expected.GetProperty("fc_keys").GetInt32(), copied);
        var conv1 = net.Encoder.named_parameters().First(p => p.name == "conv1.weight").parameter.flatten();
        var c1 = expected.GetProperty("conv1_first").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        for (int i = 0; i < c1.Length; i++) Assert.Equal(c1[i], conv1[i].item<float>()); // copied bit for bit

        net.eval();
        var input = expected.GetProperty("input").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var enc = net.Encode(tensor(input, new long[] { 1, 1, 64, 64 }));
        var f = enc.Bottleneck;
        Assert.Equal(expected.GetProperty("bottleneck_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(), f.shape);
        var first = expected.GetProperty("bottleneck_first").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var flat = f.flatten().data<float>().ToArray();
        double scale = flat.Max(v => Math.Abs(v));
        // float32 through 17 convolutions of up to 4608-term sums: relative rounding ~1e-6 per layer; 1e-4 of the
        // largest activation leaves an order of magnitude, and a wrong stride, padding or permuted tensor is off by O(1)
        for (int i = 0; i < first.Length; i++) Assert.True(Math.Abs(first[i] - flat[i]) <= 1e-4 * scale, $"bottleneck[{i}]: {flat[i]} vs PyTorch {first[i]}");
        Assert.Equal(expected.GetProperty("bottleneck_abs_sum").GetDouble(), flat.Sum(v => (double)Math.Abs(v)), 1e-4 * scale * flat.Length);
    }

    [Fact]
    public void InitEncoderStartsEveryNetworkOfTheRunsKindAndLeavesTheDecoder()
    {
        using var method = new MeanTeacherMethod(Config(Net2DKind.Resnet18Unet), new MethodSettings());
        var decoderBefore = method.Student.named_parameters().First(p => p.name.StartsWith("ups.")).parameter.clone();
        Trainer.LoadEncoder(Fixture("resnet18_state_dict.pth"), method);
        using var sd = StateDictFile.Read(Fixture("resnet18_state_dict.pth")).ToDisposable();
        foreach (var net in new[] { method.Student, method.Teacher })
        {
            var layer4 = net.named_parameters().First(p => p.name == "encoder.layer4.1.conv2.weight").parameter;
            Assert.True(layer4.equal(sd.Items["layer4.1.conv2.weight"]).all().item<bool>());
            var running = net.named_buffers().First(p => p.name == "encoder.bn1.running_var").buffer;
            Assert.True(running.equal(sd.Items["bn1.running_var"]).all().item<bool>());
        }
        Assert.True(method.Student.named_parameters().First(p => p.name.StartsWith("ups.")).parameter.equal(decoderBefore).all().item<bool>());
    }

    [Fact]
    public void AFileOfAnotherEncoderIsRefusedNamingTheFileAndTheMissingTensors()
    {
        using var net34 = Segmenter2D.Create(Config(Net2DKind.Resnet34Unet));
        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.LoadEncoder(Fixture("resnet18_state_dict.pth"), new[] { net34 }));
        Assert.Contains("resnet18_state_dict.pth", e.Message);
        Assert.Contains("layer1.2.", e.Message); // resnet34's third block of layer1 is not in a resnet18 file
        using var t = new TempDir();
        File.WriteAllText(t["not-a-state-dict.pth"], "PK\u0003\u0004 but no zip");
        var bad = Assert.Throws<InvalidDataException>(() => PretrainedWeights.LoadEncoder(t["not-a-state-dict.pth"], new[] { net34 }));
        Assert.Contains("not-a-state-dict.pth", bad.Message);
    }

    [Fact]
    public void PatchesMustBeMultiplesOfTheEncodersDownsampling()
    {
        var o = new TrainOptions { PatchHeight = 48, PatchWidth = 48, Network = Config(Net2DKind.Resnet34Unet) };
        Assert.Contains("multiples of 32", Assert.Throws<ArgumentException>(o.Validate).Message);
        (o with { Network = Config(Net2DKind.Unet) }).Validate();
    }
}

static class StateDictExtensions
{
    public sealed class Owned(Dictionary<string, Tensor> items) : IDisposable
    {
        public Dictionary<string, Tensor> Items { get; } = items;
        public void Dispose() { foreach (var t in Items.Values) t.Dispose(); }
    }
    public static Owned ToDisposable(this Dictionary<string, Tensor> d) => new(d);
}
