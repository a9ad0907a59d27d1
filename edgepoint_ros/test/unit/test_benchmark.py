"""The `benchmark` command: one short real run, records, table and plot."""
from __future__ import annotations

import json

import pytest

from edgepoint_ros.cli import benchmark
from edgepoint_ros.paths import SHIPPED_WEIGHTS_DIR

# the shipped EdgePoint weights (default of --edgepoint-weights)
SHIPPED = SHIPPED_WEIGHTS_DIR / "edgepoint.pt"
REQUIRED = {"method", "backend", "precision", "width", "height", "median_ms", "p90_ms",
            "keypoints"}


def test_short_run_writes_records_table_and_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    methods = "edgepoint,orb,sift"
    extra = ["--runtimes", "onnxruntime,openvino", "--precisions", "fp32"]
    out_json, out_plot = tmp_path / "bench.json", tmp_path / "plot.png"
    code = benchmark.main(["--methods", methods, "--sizes", "160x128,96x64", "--repeats", "2",
                           "--edgepoint-sizes", "medium",
                           "--threads", "1", "--json", str(out_json), "--plot", str(out_plot),
                           "--no-progress", *extra])
    assert code == 0
    records = json.loads(out_json.read_text())
    assert isinstance(records, list)
    extraction = [r for r in records if r["kind"] == "extraction"]
    assert all(REQUIRED <= set(r) for r in records)
    sizes = {(r["width"], r["height"]) for r in extraction}
    assert sizes == {(160, 128), (96, 64)}
    for r in extraction:
        assert r["runs"] == 2 and 0 < r["median_ms"] <= r["p90_ms"]
    orb = [r for r in extraction if r["method"] == "orb"]
    assert all(r["time_vs_orb"] == 1.0 and r["backend"] == "opencv-cpu" for r in orb)
    backends = {(r["backend"], r["precision"]) for r in extraction
                if r["method"] == "edgepoint-medium"}
    assert ("onnxruntime-cpu", "fp32") in backends and ("openvino-cpu", "fp32") in backends
    pyramid = [r for r in extraction if r["method"] == "edgepoint-medium-pyramid3"]
    assert {(r["width"], r["height"]) for r in pyramid} == {(160, 128), (96, 64)}
    matching = {r["method"]: r for r in records if r["kind"] == "matching"}
    assert set(matching) == {"match-float32-64d", "match-binary-64bit", "match-binary-256bit"}
    assert matching["match-binary-64bit"]["bytes_per_descriptor"] == 8
    assert matching["match-float32-64d"]["keypoints"] == 1000
    assert out_plot.is_file() and out_plot.stat().st_size > 1000
    table = capsys.readouterr().out
    assert "median ms" in table and "orb" in table and "match-binary-64bit" in table


def test_absent_devices_are_listed_as_skipped_not_measured(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    from edgepoint_ros.runtimes import openvino_backend
    if "npu" in openvino_backend.available_devices():
        pytest.skip("this machine has an NPU")
    code = benchmark.main(["--methods", "edgepoint", "--runtimes", "openvino",
                           "--precisions", "fp32", "--sizes", "96x64", "--repeats", "1",
                           "--edgepoint-weights", str(SHIPPED), "--no-progress",
                           "--plot", str(tmp_path / "p.png")])
    assert code == 0
    out = capsys.readouterr().out
    assert "edgepoint openvino/npu/fp32: openvino offers no 'npu' device" in out


@pytest.mark.parametrize("bad", ["640", "640x", "axb", "10x10"])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        benchmark.parse_sizes(bad)


def test_bad_arguments_exit_with_a_message(capsys):
    assert benchmark.main(["--sizes", "640"]) == 2
    assert "sizes must look like" in capsys.readouterr().err
    assert benchmark.main(["--precisions", "fp8"]) == 2
    assert "unknown precisions" in capsys.readouterr().err
    assert benchmark.main(["--methods", "orb,surf"]) == 2
    assert "unknown methods ['surf']" in capsys.readouterr().err
    assert benchmark.main(["--pyramid-levels", "0"]) == 2
    assert "--pyramid-levels must be in [1, 8]" in capsys.readouterr().err
