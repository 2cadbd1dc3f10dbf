"""Probe: do MediaPipe's *attention* Face Mesh network's layers add to the shipped face_cnn features? (ships nothing)

The mediapipe wheel ships a second face network, ``face_landmark_with_attention.tflite`` (the one the pipeline's
landmark stage runs on each frame), trained with extra attention heads that refine lips, eyes and irises. Its
backbone could see a rendered face differently from the plain Face Mesh network ``face_cnn`` reads. This probe
converts every operator of it that ``detector.training.face_mesh_onnx`` translates (the backbone; the custom
region-refinement operators and whatever depends on them are skipped), exposes the spatial mean of each 4-D PReLU
output, and reads them on the same crops, views and probe as ``experiments/pooling_probe.py --views`` (dev clips
at 2 crops/s, clip means, logistic read-out, grouped CV with groups merged by shared DeepFaceLive celebrity model):
the last PReLU at each spatial size of the backbone, alone and added to the shipped two-view vector::

    python experiments/attention_mesh_probe.py
"""
import csv
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pooling_probe import MANIFEST, dev_crops, framed, read_out, session  # noqa: E402

from detector.checks.embedding import FaceMeshFeatures  # noqa: E402
from detector.training.face_mesh_onnx import IR_VERSION, OPSET, _Converter  # noqa: E402
from detector.training.supervised_probe import merged_groups  # noqa: E402

TFLITE = Path(ort.__file__).parents[1] / "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite"


class PrefixConverter(_Converter):
    """Translates what it can; an operator it cannot, and everything fed by one, is left out."""

    def run(self):
        g = self.g
        inputs = [int(i) for i in g.InputsAsNumpy()]
        self.input_name = self.name(inputs[0])
        missing: set[int] = set()
        prelus: list[int] = []
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            oc = self.model.OperatorCodes(op.OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            opname = self.opnames.get(code, "CUSTOM")
            ins = [int(i) for i in op.InputsAsNumpy()]
            outs = [int(i) for i in op.OutputsAsNumpy()]
            handler = getattr(self, "op_" + opname.lower(), None)
            if handler is None or any(i in missing for i in ins):
                missing.update(outs)
                continue
            handler(op, ins, outs)
            if opname == "PRELU" and len(self.shape(outs[0])) == 4:
                prelus.append(outs[0])
        return prelus


def attention_session() -> tuple[ort.InferenceSession, list[tuple[str, list[int]]]]:
    cv = PrefixConverter(TFLITE.read_bytes())
    prelus = cv.run()
    cv.nodes.insert(0, helper.make_node("Identity", ["input"], [cv.input_name]))
    outs, layers = [], []
    for t in prelus:
        name = cv.name(t)
        cv.node("ReduceMean", [name], [name + "_mean"], axes=[2, 3], keepdims=0)
        outs.append(helper.make_tensor_value_info(name + "_mean", TensorProto.FLOAT, None))
        layers.append((name, cv.shape(t)))
    graph = helper.make_graph(cv.nodes, "attention_mesh_prefix",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 192, 192])],
                              outs, cv.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), so), layers


def main() -> None:
    att, layers = attention_session()
    # the backbone's last PReLU at each spatial size (NHWC shapes); later layers of a size are deeper
    last: dict[int, int] = {}
    for i, (_, shape) in enumerate(layers):
        last[shape[1]] = i
    print("attention layers used:", [(layers[i][0], layers[i][1][1:]) for i in sorted(last.values())])
    sel = sorted(last.values())
    plain = session()
    rows = list(csv.DictReader(open(MANIFEST)))
    x: dict[str, dict[str, np.ndarray]] = {}
    for r, c in dev_crops():
        for f in (1.0, 0.7):
            inp = FaceMeshFeatures.preprocess(framed(c, f))
            x.setdefault(f"shipped {f}", {})[r["path"]] = plain.run(["features"], {"input": inp})[0].mean(0)
            res = att.run(None, {"input": inp})
            x.setdefault(f"attention {f}", {})[r["path"]] = np.concatenate([res[i] for i in sel], 1).mean(0)
    kept = [r for r in rows if r["path"] in x["shipped 1.0"]]
    y = np.array([r["label"] == "fake" for r in kept])
    dfl = np.array([r["source"] == "DeepFaceLive" for r in kept])
    groups = merged_groups(kept, "celeb model")
    print(len(kept), "clips", len(set(groups)), "merged groups; AUC overall/DeepFaceLive")
    for keys in (["shipped 1.0", "shipped 0.7"], ["attention 1.0", "attention 0.7"],
                 ["shipped 1.0", "shipped 0.7", "attention 1.0", "attention 0.7"]):
        v = np.hstack([np.stack([x[k][r["path"]] for r in kept]) for k in keys])
        print(f"{' + '.join(keys):58s} dims {v.shape[1]:4d}  " + read_out(v, y, dfl, groups))


if __name__ == "__main__":
    main()
