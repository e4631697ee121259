using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>
/// Several networks predicting as one, as C3S3's test_util.py does it: the members' softmax averaged. The output is
/// log(mean softmax), a logit map whose softmax is that average (so slice-wise argmax and the sliding window's summed
/// softmax see exactly the averaged probabilities). <see cref="Kinds"/> names the members so a checkpoint rebuilds
/// them (the checkpoint reader, Inference.CheckpointFile, does).
/// </summary>
public sealed class SoftmaxEnsemble : Module<Tensor, Tensor>
{
    readonly ModuleList<Module<Tensor, Tensor>> members;

    public SoftmaxEnsemble(IReadOnlyList<string> kinds, IReadOnlyList<Module<Tensor, Tensor>> nets) : base(nameof(SoftmaxEnsemble))
    {
        if (kinds.Count != nets.Count || nets.Count < 2) throw new ArgumentException("an ensemble needs two or more members, each with its kind");
        Kinds = kinds.ToArray();
        members = new ModuleList<Module<Tensor, Tensor>>(nets.ToArray());
        RegisterComponents();
    }

    /// <summary>The members' kinds in order (e.g. "unet", "resunet"; "net3d", "resnet34-3d").</summary>
    public string[] Kinds { get; }

    public IReadOnlyList<Module<Tensor, Tensor>> Members => members.ToList();

    /// <summary>Whether a checkpoint may name <paramref name="kind"/> as a member: a 2D network's name
    /// (<see cref="Segmenter2D.Name"/>), "net3d" or "resnet34-3d".</summary>
    public static bool IsKnownKind(string kind) => kind is "net3d" or "resnet34-3d" || Segmenter2D.TryParse(kind, out _);

    /// <summary>A fresh ensemble of the named members: a 2D network's name ("unet", "resunet", "resnet18-unet", ...:
    /// <paramref name="network"/>'s widths and classes with that kind), "net3d" (<paramref name="network3D"/>'s
    /// network), "resnet34-3d" (<see cref="ResNet34Net3D"/> with its filters and dropout).</summary>
    public static SoftmaxEnsemble Create(IReadOnlyList<string> kinds, UNetConfig network, Net3DConfig? network3D)
    {
        Module<Tensor, Tensor> Member(string kind) => kind switch
        {
            "net3d" when network3D is not null => network3D.Create(network.InChannels, network.NumClasses),
            "resnet34-3d" when network3D is not null => new ResNet34Net3D(network.InChannels, network.NumClasses, network3D.Filters, network3D.Dropout),
            _ when network3D is null && Segmenter2D.TryParse(kind, out var k) => Segmenter2D.Create(network with { Kind = k }),
            _ => throw new ArgumentException($"ensemble member '{kind}' is unknown or does not fit a {(network3D is null ? "2D" : "3D")} checkpoint"),
        };
        var members = new List<Module<Tensor, Tensor>>();
        try { foreach (var k in kinds) members.Add(Member(k)); }
        catch { foreach (var m in members) m.Dispose(); throw; }
        return new SoftmaxEnsemble(kinds, members);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        foreach (var m in members)
        {
            var p = functional.softmax(m.forward(x), 1);
            sum = sum is null ? p : sum + p;
        }
        return (sum! / members.Count).clamp_min(1e-30).log().MoveToOuterDisposeScope();
    }
}
