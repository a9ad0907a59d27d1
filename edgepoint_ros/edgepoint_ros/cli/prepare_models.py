"""Build, ahead of the first node start, the derived model files a configuration needs.

    prepare_models [--params-file config/extractor.yaml] [--set FIELD=VALUE ...]

An INT8 network is calibrated on first use (NNCF or ONNX Runtime
quantization over the calibration images, `runtimes/precision.py`) and
cached; so is an OpenVINO IR or a TensorRT engine. A node that met that
first would spend its start-up there. `scripts/setup.sh` runs this for the
nodes' default settings, so a clean clone's first `ros2 launch` or demo only
loads cached files. Prints what runs and how long building it took.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import ExtractorConfig
from .extractor_settings import parse_value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prepare_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params-file", type=Path, default=None,
                        help="a ROS parameter YAML whose extractor settings to prepare "
                             "(default: the code defaults, which config/extractor.yaml shows)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an extractor setting on top (repeatable)")
    args = parser.parse_args(argv)
    values = {}
    try:
        if args.params_file:
            import yaml
            document = yaml.safe_load(args.params_file.read_text()) or {}
            for section in document.values():
                parameters = (section or {}).get("ros__parameters", {})
                values.update({k: v for k, v in parameters.items()
                               if k in ExtractorConfig.field_names()})
        for item in args.set:
            field, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--set takes FIELD=VALUE; got {item!r}")
            values[field] = parse_value(field, value)
        config = ExtractorConfig.from_mapping(values)
        from ..models import create_model
        started = time.perf_counter()
        model = create_model(config)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        print(f"prepare_models: {exc}", file=sys.stderr)
        return 1
    info = model.runtime_info()
    print(f"prepare_models: {config.model} {config.model_size if config.model == 'edgepoint' else ''}"
          f" ready on {info.get('runtime', '?')}/{info.get('device', '?')}/"
          f"{info.get('precision', '?')} in {time.perf_counter() - started:.1f} s "
          f"({info.get('model', '')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
