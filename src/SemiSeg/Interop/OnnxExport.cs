using Google.Protobuf;
using Onnx;
using SemiSeg.Data;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Interop;

/// <summary>
/// Writes the inference graph of the SSL4MIS UNet or the UA-MT VNet as an ONNX model (opset <see cref="Opset"/>, IR
/// version 8) from the weights alone: TorchSharp cannot trace a module to ONNX, and both networks are fixed graphs, so
/// the graph is emitted node by node (ONNX protobuf messages from OnnxSharp, serialised with Google.Protobuf).
/// Evaluation mode: BatchNormalization with the running statistics, no Dropout nodes. Input <c>image</c>
/// (batch, channels, height, width) or (batch, channels, depth, height, width) with symbolic batch and spatial
/// dimensions (each spatial size must be a multiple of 16, as for the network itself); output <c>logits</c> of the
/// same layout with the class count as channels. Initializers carry the reference parameter names.
/// </summary>
public static class OnnxExport
{
    public const int Opset = 17;

    public static ReferenceArchitecture Export(nn.Module net, string path)
    {
        var arch = ReferenceArchitecture.Of(net);
        var sd = net.state_dict();
        var named = ReferenceNames.Map(net, arch).ToDictionary(p => p.reference, p => sd[p.semiseg]);
        var model = Build(arch, named);
        AtomicFile.Write(path, s => model.WriteTo(s));
        return arch;
    }

    public static ModelProto Build(ReferenceArchitecture arch, IReadOnlyDictionary<string, Tensor> weights)
    {
        var g = new GraphBuilder(weights);
        bool is3D = arch.Kind == ReferenceKind.UamtVNet;
        string x = "image";
        string output = is3D ? BuildVNet(g, x) : BuildUNet(g, x, arch.Up);
        var graph = g.Graph;
        graph.Name = is3D ? "uamt_vnet" : "ssl4mis_unet";
        var spatial = is3D ? new[] { "depth", "height", "width" } : new[] { "height", "width" };
        graph.Input.Add(ValueInfo("image", new DimSpec[] { "batch", arch.InChannels }.Concat(spatial.Select(s => (DimSpec)s))));
        graph.Node.Single(n => n.Output.Contains(output)).Output[0] = "logits"; // the output convolution
        graph.Output.Add(ValueInfo("logits", new DimSpec[] { "batch", arch.NumClasses }.Concat(spatial.Select(s => (DimSpec)s))));
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "SemiSeg",
            ProducerVersion = typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "",
            Graph = graph,
            DocString = $"{arch.Describe()}; evaluation mode (BatchNorm running statistics, no dropout); logits, no softmax",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model;
    }

    static string BuildUNet(GraphBuilder g, string x, UpMode up)
    {
        string Block(string prefix, string h)
        {
            h = g.LeakyRelu(g.BatchNorm(g.Conv(h, $"{prefix}.0", 3, 1, 1), $"{prefix}.1"));
            return g.LeakyRelu(g.BatchNorm(g.Conv(h, $"{prefix}.4", 3, 1, 1), $"{prefix}.5"));
        }
        var s = new string[5];
        s[0] = Block("encoder.in_conv.conv_conv", x);
        for (int i = 1; i < 5; i++) s[i] = Block($"encoder.down{i}.maxpool_conv.1.conv_conv", g.MaxPool(s[i - 1], 2));
        var h = s[4];
        for (int k = 1; k <= 4; k++)
        {
            string u = up == UpMode.Bilinear
                ? g.ResizeBilinearAlignCorners(g.Conv(h, $"decoder.up{k}.conv1x1", 1, 1, 0), 2)
                : g.ConvTranspose(h, $"decoder.up{k}.up", 2, 2);
            h = Block($"decoder.up{k}.conv.conv_conv", g.Concat(s[4 - k], u));
        }
        return g.Conv(h, "decoder.out_conv", 3, 1, 1);
    }

    static string BuildVNet(GraphBuilder g, string x)
    {
        string Stage(string block, int n, string h)
        {
            for (int i = 0; i < n; i++) h = g.Relu(g.BatchNorm(g.Conv(h, $"{block}.conv.{3 * i}", 3, 1, 1), $"{block}.conv.{3 * i + 1}"));
            return h;
        }
        string Down(string block, string h) => g.Relu(g.BatchNorm(g.Conv(h, $"{block}.conv.0", 2, 2, 0), $"{block}.conv.1"));
        string Up(string block, string h) => g.Relu(g.BatchNorm(g.ConvTranspose(h, $"{block}.conv.0", 2, 2), $"{block}.conv.1"));
        var x1 = Stage("block_one", 1, x);
        var x2 = Stage("block_two", 2, Down("block_one_dw", x1));
        var x3 = Stage("block_three", 3, Down("block_two_dw", x2));
        var x4 = Stage("block_four", 3, Down("block_three_dw", x3));
        var x5 = Stage("block_five", 3, Down("block_four_dw", x4));
        var x6 = Stage("block_six", 3, g.Add(Up("block_five_up", x5), x4));
        var x7 = Stage("block_seven", 3, g.Add(Up("block_six_up", x6), x3));
        var x8 = Stage("block_eight", 2, g.Add(Up("block_seven_up", x7), x2));
        var x9 = Stage("block_nine", 1, g.Add(Up("block_eight_up", x8), x1));
        return g.Conv(x9, "out_conv", 1, 1, 0);
    }

    readonly record struct DimSpec(string? Param, long Value)
    {
        public static implicit operator DimSpec(string p) => new(p, 0);
        public static implicit operator DimSpec(int v) => new(null, v);
    }

    static ValueInfoProto ValueInfo(string name, IEnumerable<DimSpec> dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d.Param is { } p ? new TensorShapeProto.Types.Dimension { DimParam = p } : new TensorShapeProto.Types.Dimension { DimValue = d.Value });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    /// <summary>Appends nodes; every weight it uses becomes an initializer under its reference name (once).</summary>
    sealed class GraphBuilder
    {
        readonly IReadOnlyDictionary<string, Tensor> _w;
        readonly HashSet<string> _added = new();
        int _n;
        public GraphProto Graph { get; } = new();

        public GraphBuilder(IReadOnlyDictionary<string, Tensor> weights) => _w = weights;

        string Weight(string name)
        {
            if (!_w.TryGetValue(name, out var t)) throw new InvalidOperationException($"ONNX export: weight '{name}' is missing");
            if (_added.Add(name))
            {
                using var c = t.detach().cpu().to_type(ScalarType.Float32).contiguous();
                var data = c.data<float>().ToArray();
                var bytes = new byte[data.Length * 4];
                Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
                if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw data is little-endian");
                var tp = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(bytes) };
                tp.Dims.AddRange(c.shape);
                Graph.Initializer.Add(tp);
            }
            return name;
        }

        string Node(string op, IEnumerable<string> inputs, params AttributeProto[] attrs)
        {
            string y = $"{op.ToLowerInvariant()}_{_n++}";
            var node = new NodeProto { OpType = op, Name = y };
            node.Input.AddRange(inputs);
            node.Output.Add(y);
            node.Attribute.AddRange(attrs);
            Graph.Node.Add(node);
            return y;
        }

        static AttributeProto Ints(string name, IEnumerable<long> v)
        {
            var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(v);
            return a;
        }
        static AttributeProto Float(string name, float v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = v };
        static AttributeProto Int(string name, long v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = v };
        static AttributeProto Str(string name, string v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(v) };

        int Dims(string prefix) => (int)_w[$"{prefix}.weight"].dim() - 2;

        public string Conv(string x, string prefix, int kernel, int stride, int pad)
        {
            int d = Dims(prefix);
            return Node("Conv", new[] { x, Weight($"{prefix}.weight"), Weight($"{prefix}.bias") },
                Ints("kernel_shape", Enumerable.Repeat((long)kernel, d)), Ints("strides", Enumerable.Repeat((long)stride, d)),
                Ints("pads", Enumerable.Repeat((long)pad, 2 * d)), Ints("dilations", Enumerable.Repeat(1L, d)), Int("group", 1));
        }

        public string ConvTranspose(string x, string prefix, int kernel, int stride)
        {
            int d = Dims(prefix);
            return Node("ConvTranspose", new[] { x, Weight($"{prefix}.weight"), Weight($"{prefix}.bias") },
                Ints("kernel_shape", Enumerable.Repeat((long)kernel, d)), Ints("strides", Enumerable.Repeat((long)stride, d)),
                Ints("pads", Enumerable.Repeat(0L, 2 * d)), Ints("dilations", Enumerable.Repeat(1L, d)), Int("group", 1));
        }

        /// <summary>PyTorch BatchNorm in evaluation mode (eps 1e-5): (x − running_mean)/√(running_var + eps)·γ + β.</summary>
        public string BatchNorm(string x, string prefix) =>
            Node("BatchNormalization", new[] { x, Weight($"{prefix}.weight"), Weight($"{prefix}.bias"), Weight($"{prefix}.running_mean"), Weight($"{prefix}.running_var") },
                Float("epsilon", 1e-5f), Float("momentum", 0.9f));

        public string LeakyRelu(string x) => Node("LeakyRelu", new[] { x }, Float("alpha", 0.01f));
        public string Relu(string x) => Node("Relu", new[] { x });
        public string Add(string a, string b) => Node("Add", new[] { a, b });
        public string Concat(string a, string b) => Node("Concat", new[] { a, b }, Int("axis", 1));
        public string MaxPool(string x, int k) => Node("MaxPool", new[] { x }, Ints("kernel_shape", new long[] { k, k }), Ints("strides", new long[] { k, k }), Ints("pads", new long[] { 0, 0, 0, 0 }));

        /// <summary>nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True) on (N, C, H, W).</summary>
        public string ResizeBilinearAlignCorners(string x, int scale)
        {
            string scales = $"scales_{_n++}";
            var tp = new TensorProto { Name = scales, DataType = (int)TensorProto.Types.DataType.Float };
            tp.Dims.Add(4);
            tp.FloatData.AddRange(new[] { 1f, 1f, scale, scale });
            Graph.Initializer.Add(tp);
            return Node("Resize", new[] { x, "", scales }, Str("mode", "linear"), Str("coordinate_transformation_mode", "align_corners"));
        }
    }
}
