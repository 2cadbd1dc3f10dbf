"""Convert MediaPipe's Face Mesh network (TFLite) into an ONNX feature extractor.

Why this exists: the detector's inference path runs ONNX models through
onnxruntime only (no TensorFlow / TFLite runtime ships with it), and no
pretrained ImageNet or face-recognition weights can be downloaded here. The one
pretrained face CNN installable in this environment is the Face Mesh landmark
network inside the ``mediapipe`` wheel we already depend on
(``mediapipe/modules/face_landmark/face_landmark.tflite``, Apache-2.0,
(c) Google). ``experiments/backbone_probe.py`` showed its intermediate
activations are useful face features; this module turns that network into
``models/face_mesh_features.onnx`` so the same features can be computed with
onnxruntime.

The conversion is a direct, op-by-op translation of the TFLite flatbuffer
(parsed with the pure-python ``tflite`` package, a ``train`` extra, not a
runtime dependency); weights are the wheel's own fp16 weights widened to
float32, unchanged otherwise. The ONNX graph has

* input ``input``: float32 ``[N, 3, 192, 192]``, RGB in [0, 1] (NCHW; the
  TFLite model takes the same image as NHWC ``[1, 192, 192, 3]``);
* output ``features``: float32 ``[N, 448]``, per crop the spatial mean and
  population std of ``p_re_lu_6`` (48x48x32) and ``p_re_lu_9`` (24x24x64) and
  the spatial mean of ``p_re_lu_12`` (12x12x128) and ``p_re_lu_14`` (6x6x128),
  in that order (the pooling ``experiments/backbone_probe.py`` used);
* output ``landmarks``: float32 ``[N, 1404]``, the network's own 468 x (x, y, z)
  landmarks in pixels of the 192 crop, raw as TFLite gives them;
* output ``face_flag``: float32 ``[N, 1]``, the network's raw face-presence
  score (a logit: MediaPipe applies a sigmoid to it downstream).

The last two exist so that tests can prove the conversion is right without a
TFLite runtime (landmarks must land on the face MediaPipe itself finds).
Every ONNX activation keeps the name of the TFLite tensor it replaces, so a
verifier can expose any intermediate tensor by name.

Usage::

    pip install -e '.[train]'   # or just: pip install tflite onnx
    python -m detector.training.face_mesh_onnx [--tflite PATH] [--out models/face_mesh_features.onnx]
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "models" / "face_mesh_features.onnx"
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; keeps older onnxruntime builds able to load the file
INPUT_SIZE = 192

# (TFLite tensor name, also pool the spatial std) -> 32+32 + 64+64 + 128 + 128 = 448 features
FEATURE_LAYERS: tuple[tuple[str, bool], ...] = (
    ("p_re_lu_6", True),
    ("p_re_lu_9", True),
    ("p_re_lu_12", False),
    ("p_re_lu_14", False),
)
N_FEATURES = 448
N_LANDMARK_VALUES = 1404  # 468 landmarks x (x, y, z)


class ConversionError(ValueError):
    """The TFLite model uses something this converter does not translate."""


def default_tflite_path() -> Path:
    import mediapipe

    return Path(mediapipe.__file__).parent / "modules" / "face_landmark" / "face_landmark.tflite"


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


class _Converter:
    """Walks the TFLite subgraph in execution order, emitting ONNX nodes.

    Layout: every 4-D activation is NHWC in TFLite and NCHW here (the layout ONNX
    Conv/MaxPool/PRelu expect), so weights and axis-dependent constants are
    permuted when they are read; activations are never transposed.
    """

    def __init__(self, buf: bytes):
        import tflite
        from tflite.utils import BUILTIN_OPCODE2NAME

        self.tfl = tflite
        self.opnames = BUILTIN_OPCODE2NAME
        self.buf = buf
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        if self.model.SubgraphsLength() != 1:
            raise ConversionError(f"expected one subgraph, found {self.model.SubgraphsLength()}")
        self.g = self.model.Subgraphs(0)
        self.type_names = _enum_names(tflite.TensorType)
        self.act_names = _enum_names(tflite.ActivationFunctionType)
        self.consts: dict[int, np.ndarray] = {}  # tensor index -> float32/int constant (dequantized weights)
        self.nodes: list = []
        self.inits: list = []
        self._uid = 0
        self._init_names: set[str] = set()

    # ---- tensors -------------------------------------------------------------------------------
    def tensor(self, i: int):
        return self.g.Tensors(int(i))

    def name(self, i: int) -> str:
        return self.tensor(i).Name().decode()

    def shape(self, i: int) -> list[int]:
        return [int(s) for s in self.tensor(i).ShapeAsNumpy()]

    def buffer_array(self, i: int) -> np.ndarray | None:
        """The constant stored in the flatbuffer for tensor ``i``, or None for an activation."""
        t = self.tensor(i)
        b = self.model.Buffers(t.Buffer())
        if b.Offset() > 1:  # large-model layout: data stored after the flatbuffer
            raw = self.buf[b.Offset():b.Offset() + b.Size()]
        elif b.DataLength() > 0:
            raw = b.DataAsNumpy().tobytes()
        else:
            return None
        dtypes = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT64": np.int64}
        tname = self.type_names.get(t.Type(), str(t.Type()))
        if tname not in dtypes:
            raise ConversionError(f"constant {self.name(i)!r} has unsupported type {tname}")
        return np.frombuffer(raw, dtype=dtypes[tname]).reshape(self.shape(i)).copy()

    def const(self, i: int) -> np.ndarray:
        if i in self.consts:
            return self.consts[i]
        a = self.buffer_array(i)
        if a is None:
            raise ConversionError(f"tensor {self.name(i)!r} was expected to be a constant")
        return a

    def is_const(self, i: int) -> bool:
        return i in self.consts or self.buffer_array(i) is not None

    def init(self, base: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper

        name = base if base not in self._init_names else self.tmp(base)
        self._init_names.add(name)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def tmp(self, base: str) -> str:
        self._uid += 1
        return f"{base}__{self._uid}"

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))

    # ---- helpers ---------------------------------------------------------------------------------
    def options(self, op, cls):
        table = op.BuiltinOptions()
        opts = cls()
        if table is None:
            raise ConversionError(f"operator without options where {cls.__name__} was expected")
        opts.Init(table.Bytes, table.Pos)
        return opts

    def activation(self, code: int, src: str, out: str) -> None:
        """Emit a fused activation ``src -> out`` (TFLite fuses these into conv/add/pool)."""
        act = self.act_names.get(code, str(code))
        if act == "NONE":
            self.node("Identity", [src], [out])
        elif act == "RELU":
            self.node("Relu", [src], [out])
        elif act == "RELU6":
            self.node("Clip", [src, self.init(self.tmp("zero"), np.float32(0)),
                               self.init(self.tmp("six"), np.float32(6))], [out])
        elif act == "RELU_N1_TO_1":
            self.node("Clip", [src, self.init(self.tmp("m1"), np.float32(-1)),
                               self.init(self.tmp("p1"), np.float32(1))], [out])
        elif act == "TANH":
            self.node("Tanh", [src], [out])
        else:
            raise ConversionError(f"unsupported fused activation {act}")

    def fused(self, code: int, out: str) -> str:
        """Name the raw op output so that the fused activation can produce ``out``."""
        return out if self.act_names.get(code) == "NONE" else self.tmp(out + "_preact")

    def same_pads(self, in_hw: list[int], k_hw: tuple[int, int], s_hw: tuple[int, int],
                  d_hw: tuple[int, int], padding: int) -> list[int]:
        """ONNX ``pads`` [h_begin, w_begin, h_end, w_end] reproducing TFLite padding exactly.

        TFLite SAME puts the odd extra pixel at the end (bottom/right); ONNX
        ``auto_pad=SAME_UPPER`` would agree, but explicit pads make the intent
        unambiguous and independent of runtime shape inference.
        """
        if padding == self.tfl.Padding.VALID:
            return [0, 0, 0, 0]
        if padding != self.tfl.Padding.SAME:
            raise ConversionError(f"unsupported padding mode {padding}")
        begin, end = [], []
        for size, k, s, d in zip(in_hw, k_hw, s_hw, d_hw):
            eff_k = (k - 1) * d + 1
            total = max((math.ceil(size / s) - 1) * s + eff_k - size, 0)
            begin.append(total // 2)
            end.append(total - total // 2)
        return begin + end

    # ---- ops ------------------------------------------------------------------------------------
    def op_dequantize(self, op, ins, outs) -> None:
        # fp16 weights stored in the file; TFLite widens them to fp32 at load time: do the same, as constants
        src = self.const(ins[0])
        if src.dtype != np.float16:
            raise ConversionError(f"DEQUANTIZE of {src.dtype} ({self.name(ins[0])!r}) is not supported")
        self.consts[outs[0]] = src.astype(np.float32)

    def _conv(self, op, ins, outs, depthwise: bool) -> None:
        tfl = self.tfl
        opts = self.options(op, tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions)
        x = self.name(ins[0])
        w = self.const(ins[1])
        out = self.name(outs[0])
        in_shape = self.shape(ins[0])  # NHWC
        if depthwise:
            # TFLite depthwise kernel is [1, kh, kw, C*mult]; ONNX grouped conv wants [C*mult, 1, kh, kw]
            # with group = C (each input channel convolved by its own `mult` filters).
            c_in = in_shape[3]
            mult = opts.DepthMultiplier()
            if w.shape[0] != 1 or w.shape[3] != c_in * mult:
                raise ConversionError(f"unexpected depthwise kernel shape {w.shape} for input {in_shape}")
            w_onnx = w.transpose(3, 0, 1, 2)
            group = c_in
        else:
            # TFLite conv kernel is [out, kh, kw, in] (OHWI); ONNX Conv wants [out, in, kh, kw] (OIHW)
            w_onnx = w.transpose(0, 3, 1, 2)
            group = 1
            if w.shape[3] != in_shape[3]:
                raise ConversionError(f"grouped CONV_2D ({w.shape} on {in_shape}) is not supported")
        kh, kw = w.shape[1], w.shape[2]
        s = (opts.StrideH(), opts.StrideW())
        d = (opts.DilationHFactor(), opts.DilationWFactor())
        pads = self.same_pads(in_shape[1:3], (kh, kw), s, d, opts.Padding())
        inputs = [x, self.init(self.name(ins[1]), w_onnx.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.init(self.name(ins[2]), self.const(ins[2]).astype(np.float32).reshape(-1)))
        raw = self.fused(opts.FusedActivationFunction(), out)
        self.node("Conv", inputs, [raw], kernel_shape=[int(kh), int(kw)], strides=list(s), dilations=list(d),
                  pads=pads, group=int(group))
        if raw != out:
            self.activation(opts.FusedActivationFunction(), raw, out)

    def op_conv_2d(self, op, ins, outs) -> None:
        self._conv(op, ins, outs, depthwise=False)

    def op_depthwise_conv_2d(self, op, ins, outs) -> None:
        self._conv(op, ins, outs, depthwise=True)

    def op_prelu(self, op, ins, outs) -> None:
        alpha = self.const(ins[1])
        # TFLite alpha broadcasts against NHWC ([1, 1, C], [H, W, C] or [C]); ONNX PRelu slope must broadcast
        # against NCHW, so channels move first: [C, 1, 1] (or [C, H, W]).
        if alpha.ndim == 1:
            alpha = alpha.reshape(-1, 1, 1)
        elif alpha.ndim == 3:
            alpha = alpha.transpose(2, 0, 1)
        elif alpha.ndim == 4 and alpha.shape[0] == 1:
            alpha = alpha[0].transpose(2, 0, 1)
        else:
            raise ConversionError(f"unexpected PRELU alpha shape {alpha.shape}")
        self.node("PRelu", [self.name(ins[0]), self.init(self.name(ins[1]), alpha.astype(np.float32))],
                  [self.name(outs[0])])

    def op_add(self, op, ins, outs) -> None:
        opts = self.options(op, self.tfl.AddOptions)
        for i in ins:
            if self.is_const(i):
                raise ConversionError(f"ADD with a constant operand ({self.name(i)!r}) is not supported")
            if len(self.shape(i)) != 4:
                raise ConversionError(f"ADD on a non-4-D tensor ({self.name(i)!r}) is not supported")
        if self.shape(ins[0]) != self.shape(ins[1]):
            raise ConversionError(f"broadcasting ADD {self.shape(ins[0])} + {self.shape(ins[1])} is not supported")
        out = self.name(outs[0])
        raw = self.fused(opts.FusedActivationFunction(), out)
        self.node("Add", [self.name(ins[0]), self.name(ins[1])], [raw])
        if raw != out:
            self.activation(opts.FusedActivationFunction(), raw, out)

    def op_max_pool_2d(self, op, ins, outs) -> None:
        opts = self.options(op, self.tfl.Pool2DOptions)
        k = (opts.FilterHeight(), opts.FilterWidth())
        s = (opts.StrideH(), opts.StrideW())
        # padded cells never win in either runtime (TFLite skips them, ONNX MaxPool pads with -inf)
        pads = self.same_pads(self.shape(ins[0])[1:3], k, s, (1, 1), opts.Padding())
        out = self.name(outs[0])
        raw = self.fused(opts.FusedActivationFunction(), out)
        self.node("MaxPool", [self.name(ins[0])], [raw], kernel_shape=list(k), strides=list(s), pads=pads)
        if raw != out:
            self.activation(opts.FusedActivationFunction(), raw, out)

    def op_pad(self, op, ins, outs) -> None:
        # Here PAD zero-fills extra channels so a max-pooled shortcut matches the wider conv branch ("channel
        # padding"). TFLite paddings are [[n_b, n_e], [h_b, h_e], [w_b, w_e], [c_b, c_e]] in NHWC order; ONNX
        # Pad wants [all begins..., all ends...] in NCHW order.
        p = self.const(ins[1]).astype(np.int64)
        if p.shape != (4, 2):
            raise ConversionError(f"PAD with paddings of shape {p.shape} is not supported")
        if p[0].any():
            raise ConversionError("PAD along the batch axis is not supported")
        nchw = p[[0, 3, 1, 2]]
        pads = np.concatenate([nchw[:, 0], nchw[:, 1]])
        self.node("Pad", [self.name(ins[0]), self.init(self.tmp(self.name(ins[1])), pads)],
                  [self.name(outs[0])], mode="constant")

    # ---- driver ---------------------------------------------------------------------------------
    def run(self) -> tuple[list, list, dict[str, int]]:
        g = self.g
        inputs = [int(i) for i in g.InputsAsNumpy()]
        if len(inputs) != 1 or self.shape(inputs[0]) != [1, INPUT_SIZE, INPUT_SIZE, 3]:
            raise ConversionError(f"expected one [1,{INPUT_SIZE},{INPUT_SIZE},3] input")
        self.input_name = self.name(inputs[0])
        prelu_out: dict[str, int] = {}
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            oc = self.model.OperatorCodes(op.OpcodeIndex())
            # models written by newer converters keep small codes in the deprecated field, large ones in BuiltinCode
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            opname = self.opnames.get(code, f"CUSTOM({code})")
            handler = getattr(self, "op_" + opname.lower(), None)
            if handler is None:
                raise ConversionError(f"unsupported TFLite operator {opname} (operator #{k})")
            ins = [int(i) for i in op.InputsAsNumpy()]
            outs = [int(i) for i in op.OutputsAsNumpy()]
            handler(op, ins, outs)
            if opname == "PRELU":
                prelu_out[self.name(outs[0])] = outs[0]
        return [int(i) for i in g.OutputsAsNumpy()], inputs, prelu_out


def convert(tflite_path: Path | None = None) -> onnx.ModelProto:
    """Translate ``face_landmark.tflite`` into the ONNX feature model described in the module docstring."""
    import onnx
    from onnx import TensorProto, helper

    tflite_path = Path(tflite_path) if tflite_path is not None else default_tflite_path()
    buf = tflite_path.read_bytes()
    cv = _Converter(buf)
    outputs, _, prelu_out = cv.run()

    # rename the TFLite input to the ONNX input name; it is already NCHW in ONNX terms
    cv.nodes.insert(0, helper.make_node("Identity", ["input"], [cv.input_name], name="input_nhwc_alias"))

    # network outputs: 1x1x1x1404 landmarks and 1x1x1x1 face flag (NHWC) -> [N,1404,1,1] / [N,1,1,1] here
    by_size = {int(np.prod(cv.shape(i))): i for i in outputs}
    if set(by_size) != {N_LANDMARK_VALUES, 1}:
        raise ConversionError(f"unexpected network outputs {[cv.shape(i) for i in outputs]}")
    cv.node("Flatten", [cv.name(by_size[N_LANDMARK_VALUES])], ["landmarks"], axis=1)
    cv.node("Flatten", [cv.name(by_size[1])], ["face_flag"], axis=1)

    # pooled features: mean over H, W (axes 2, 3 in NCHW); std as sqrt(mean((x - mean)^2)), population std
    parts = []
    for layer, with_std in FEATURE_LAYERS:
        if layer not in prelu_out:
            raise ConversionError(f"PReLU output {layer!r} not found; PReLU outputs are {sorted(prelu_out)}")
        mean_k = f"{layer}_mean_keep"
        cv.node("ReduceMean", [layer], [mean_k], axes=[2, 3], keepdims=1)
        cv.node("Flatten", [mean_k], [f"{layer}_mean"], axis=1)
        parts.append(f"{layer}_mean")
        if with_std:
            cv.node("Sub", [layer, mean_k], [f"{layer}_dev"])
            cv.node("Mul", [f"{layer}_dev", f"{layer}_dev"], [f"{layer}_dev2"])
            cv.node("ReduceMean", [f"{layer}_dev2"], [f"{layer}_var"], axes=[2, 3], keepdims=0)
            cv.node("Sqrt", [f"{layer}_var"], [f"{layer}_std"])
            parts.append(f"{layer}_std")
    cv.node("Concat", parts, ["features"], axis=1)

    graph = helper.make_graph(
        cv.nodes, "face_mesh_features",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", N_FEATURES]),
         helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", N_LANDMARK_VALUES]),
         helper.make_tensor_value_info("face_flag", TensorProto.FLOAT, ["N", 1])],
        cv.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="detector.training.face_mesh_onnx")
    model.ir_version = IR_VERSION
    sha = hashlib.sha256(buf).hexdigest()
    mp_version = _mediapipe_version()
    model.doc_string = (
        f"MediaPipe Face Mesh landmark network ({tflite_path.name}, sha256 {sha}, from mediapipe=={mp_version}), "
        "converted op-by-op to ONNX with unchanged weights (fp16 widened to fp32). Input NCHW RGB in [0,1], "
        "192x192. Outputs: pooled PReLU features [N,448], raw landmarks [N,1404] (192-crop pixels), raw face "
        "flag logit [N,1]. Copyright Google LLC, Apache License 2.0.")
    helper.set_model_props(model, {
        "source_file": "mediapipe/modules/face_landmark/" + tflite_path.name,
        "source_sha256": sha,
        "mediapipe_version": mp_version,
        "license": "Apache-2.0 (model weights (c) Google LLC, from the MediaPipe project)",
        "feature_layers": ",".join(f"{n}:{'mean+std' if s else 'mean'}" for n, s in FEATURE_LAYERS),
        "converter": "detector.training.face_mesh_onnx",
    })
    onnx.checker.check_model(model, full_check=True)
    return model


def _mediapipe_version() -> str:
    try:
        from importlib.metadata import version

        return version("mediapipe")
    except Exception:  # noqa: BLE001 - metadata only
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m detector.training.face_mesh_onnx", description=__doc__.split("\n")[0])
    ap.add_argument("--tflite", type=Path, default=None, help="face_landmark.tflite (default: the mediapipe wheel's)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    import onnx

    model = convert(args.tflite)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(model.graph.node)} nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
