"""A sentence-transformers CrossEncoder on one of its backends, driven over stdin by bench.py ``encoder``.

Why a separate process: sentence-transformers' accelerated backends cannot be installed beside this project's
stack. Its ``onnx`` extra needs optimum-onnx, whose releases require transformers < 4.58 while sentence-transformers
6.3 requires transformers >= 5; its ``openvino`` extra (optimum-intel) installs with transformers 5.5, not the 5.24
the project pins. So the baseline runs in its own virtual environment (``--st-python`` of bench.py; see
docs/benchmarks.md for the pip line) and bench.py interleaves its repetitions with ours, each side timing its own
process's CPU seconds.

Protocol: one JSON object per line on stdout, answering each stdin line:
``time`` → ``{"cpu_s": ...}`` for one ``predict`` over the pairs; ``scores PATH`` → writes the scores of the pairs
file given as PATH (a JSON list of [query, document]) to PATH + ".scores.json"; ``quit``.

This file imports only sentence-transformers, torch and the standard library: it runs under another interpreter.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def openvino_int8(ce, model_dir: str, calibration: str, samples: int):
    """sentence-transformers' own static int8 quantisation of an OpenVINO model (NNCF post-training
    quantisation), calibrated on local texts: its default calibration set (GLUE SST-2) is on the hub."""
    from optimum.intel import OVQuantizationConfig
    from sentence_transformers import CrossEncoder
    from sentence_transformers.backend import export_static_quantized_openvino_model

    export_static_quantized_openvino_model(
        ce,
        OVQuantizationConfig(num_samples=samples),
        model_dir,
        dataset_name=calibration,
        dataset_config_name="default",
        dataset_split="train",
        column_name="sentence",
    )
    file = "openvino/openvino_model_qint8_quantized.xml"
    return file, CrossEncoder(
        model_dir,
        backend="openvino",
        device="cpu",
        max_length=ce.max_length,
        model_kwargs={"file_name": file, "ov_config": {"INFERENCE_NUM_THREADS": "1"}},
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a folder the worker may write its exports into")
    ap.add_argument("--backend", choices=("torch", "onnx", "openvino"), default="openvino")
    ap.add_argument("--int8-calibration", help="local dataset folder (a 'sentence' column): quantise to int8")
    ap.add_argument("--calibration-samples", type=int, default=100)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--max-length", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(a.threads)
    kwargs = {"ov_config": {"INFERENCE_NUM_THREADS": str(a.threads)}} if a.backend == "openvino" else {}
    t = time.time()
    ce = CrossEncoder(a.model, backend=a.backend, device="cpu", max_length=a.max_length, model_kwargs=kwargs)
    info = {"backend": a.backend, "load_s": time.time() - t}
    if a.backend == "openvino":
        ce.save_pretrained(a.model)  # the exported IR, so the int8 step and later runs reuse it
    if a.int8_calibration:
        t = time.time()
        info["file"], ce = openvino_int8(ce, a.model, a.int8_calibration, a.calibration_samples)
        info["quantize_s"] = time.time() - t
    import sentence_transformers
    import transformers

    info["versions"] = {
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
    }
    try:
        import openvino

        info["versions"]["openvino"] = openvino.__version__
    except ImportError:
        pass
    pairs = [tuple(p) for p in json.loads(Path(a.pairs).read_text())]
    ident = torch.nn.Identity()

    def predict(ps):
        return ce.predict(ps, batch_size=a.batch_size, activation_fn=ident, show_progress_bar=False)

    print(json.dumps({"ready": info}), flush=True)
    for line in sys.stdin:
        cmd, *arg = line.split(maxsplit=1)
        if cmd == "time":
            t = time.process_time()
            predict(pairs)
            print(json.dumps({"cpu_s": time.process_time() - t}), flush=True)
        elif cmd == "scores":
            path = Path(arg[0].strip())
            ps = [tuple(p) for p in json.loads(path.read_text())]
            t = time.process_time()
            s = predict(ps)
            Path(str(path) + ".scores.json").write_text(json.dumps([float(x) for x in s]))
            print(json.dumps({"cpu_s": time.process_time() - t, "n": len(ps)}), flush=True)
        elif cmd == "quit":
            return


if __name__ == "__main__":
    main()
