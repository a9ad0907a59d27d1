"""What each runtime/device pair really runs on this machine, how fast, and
whether its keypoints agree with the CPU reference (onnxruntime/cpu/fp32).

    python scripts/gpu_check.py IMAGE [--frames 50] [--json OUT.json]

For every (runtime, device, precision) it asks for, it prints what the
session reports it runs on (onnxruntime: session.get_providers(); a fallback
is reported, not hidden), the median and 90th-percentile milliseconds per
extraction of IMAGE resized to 640x480 (1024 keypoints, one pyramid level;
network + post-processing, after 5 warm-up frames) and, against the
reference, the keypoints matched within 0.1 px and the median descriptor
cosine of those. Written for the GPU machines a developer is lent now and
then; on a CPU-only machine the GPU rows show their fallback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import cv2
import numpy as np

from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.models import create_model

CANDIDATES = [("onnxruntime", "cpu", "fp32"), ("torch", "cpu", "fp32"),
              ("torch", "cuda", "fp32"), ("torch", "cuda", "fp16"),
              ("onnxruntime", "cuda", "fp32"), ("onnxruntime", "tensorrt", "fp16"),
              ("openvino", "gpu", "fp16")]


def agreement(reference, features) -> tuple[float, float]:
    """Share of the reference keypoints with a keypoint within 0.1 px, and the
    median cosine of the descriptors of those pairs."""
    if len(reference.keypoints) == 0 or len(features.keypoints) == 0:
        return 0.0, float("nan")
    d = np.linalg.norm(reference.keypoints[:, None] - features.keypoints[None], axis=2)
    nearest = d.argmin(axis=1)
    close = d[np.arange(len(d)), nearest] <= 0.1
    if not close.any():
        return 0.0, float("nan")
    cos = (reference.descriptors[close] * features.descriptors[nearest[close]]).sum(axis=1)
    return float(close.mean()), float(np.median(cos))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--model", default="edgepoint")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        parser.error(f"cannot read image {args.image}")
    image = cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA)
    records, reference = [], None
    for runtime, device, precision in CANDIDATES:
        config = ExtractorConfig(model=args.model, runtime=runtime, device=device,
                                 precision=precision, max_keypoints=1024, pyramid_levels=1)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = create_model(config)
        except Exception as exc:   # a runtime that is not installed here
            print(f"{runtime}/{device}/{precision}: cannot start: {exc}", flush=True)
            records.append({"asked": [runtime, device, precision], "error": str(exc)})
            continue
        info = model.runtime_info()
        for _ in range(5):
            features = model.extract(image)
        times = []
        for _ in range(args.frames):
            t0 = time.perf_counter()
            features = model.extract(image)
            times.append((time.perf_counter() - t0) * 1e3)
        if reference is None:
            reference = features
        share, cosine = agreement(reference, features)
        record = {"asked": [runtime, device, precision],
                  "runs_on": [info.get("runtime"), info.get("device"), info.get("precision")],
                  "providers": info.get("providers"), "fallback": info.get("fallback", ""),
                  "warnings": [str(w.message) for w in caught],
                  "ms_median": float(np.median(times)), "ms_p90": float(np.percentile(times, 90)),
                  "keypoints": len(features.keypoints), "keypoints_within_0.1px": share,
                  "descriptor_cosine_median": cosine}
        records.append(record)
        print(f"{runtime}/{device}/{precision}: runs on {'/'.join(map(str, record['runs_on']))}"
              f"{' providers ' + ','.join(record['providers']) if record['providers'] else ''}"
              f"{' (FALLBACK)' if record['fallback'] else ''}: {record['ms_median']:.2f} ms "
              f"median, {record['ms_p90']:.2f} p90, {record['keypoints']} keypoints, "
              f"{100 * share:.1f} % within 0.1 px of the reference, descriptor cosine "
              f"{cosine:.5f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
