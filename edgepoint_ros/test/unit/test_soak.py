"""The soak command's verdict and arguments (the soak itself runs for minutes:
`bash scripts/soak.sh`, not part of the tests)."""
from __future__ import annotations

import pytest

from edgepoint_ros.cli import soak


def _samples(extractor_mb, step_s=5.0):
    return [{"t": i * step_s, "rss_mb": {"extractor": mb, "matcher": 100.0}, "cpu_s": {}}
            for i, mb in enumerate(extractor_mb)]


def test_memory_is_judged_from_the_end_of_warm_up():
    # Growth during warm-up (model build, first frames) does not count.
    warming = [100.0, 180.0, 240.0, 250.0] + [250.0 + (i % 3) for i in range(20)]
    verdict = soak.memory_verdict(_samples(warming), warmup_s=15.0, bound_mb=30.0)
    assert verdict["verdict"] == "PASS"
    node = verdict["nodes"]["extractor"]
    assert node["baseline_mb"] == 250.0 and node["start_mb"] == 100.0
    assert abs(node["growth_mb_per_min"]) < 3.0


def test_a_steady_leak_beyond_the_bound_fails_naming_the_node():
    leaking = [250.0 + 2.0 * i for i in range(30)]  # 2 MB per 5 s sample
    verdict = soak.memory_verdict(_samples(leaking), warmup_s=60.0, bound_mb=30.0)
    assert verdict["verdict"] == "FAIL"
    assert verdict["nodes"]["extractor"]["verdict"] == "FAIL"
    assert verdict["nodes"]["matcher"]["verdict"] == "PASS"
    assert verdict["nodes"]["extractor"]["growth_mb_per_min"] == pytest.approx(24.0)


def test_a_node_without_samples_after_warm_up_fails():
    samples = _samples([200.0, 210.0])
    samples[-1]["rss_mb"]["extractor"] = None  # the process had exited
    verdict = soak.memory_verdict(samples, warmup_s=5.0, bound_mb=30.0)
    assert verdict["nodes"]["extractor"]["verdict"] == "FAIL"
    assert verdict["verdict"] == "FAIL"


def test_warm_up_and_percentiles():
    assert soak.warmup_seconds(600.0) == 60.0
    assert soak.warmup_seconds(60.0) == 30.0
    stats = soak.percentiles(range(1, 101))
    assert stats["count"] == 100 and stats["p50"] == pytest.approx(50.5)
    assert stats["p99"] == pytest.approx(99.01) and stats["max"] == 100
    assert soak.percentiles([]) == {"count": 0}


@pytest.mark.parametrize("argv, problem", [
    (["--minutes", "0"], "--minutes and --sample-s must be > 0"),
    (["--rate", "0"], "--rate must be > 0"),
    (["--memory-bound-mb", "-1"], "--memory-bound-mb must be >= 0"),
    (["--width", "0"], "--width and --height must be > 0"),
])
def test_bad_arguments_are_named(argv, problem, capsys):
    with pytest.raises(SystemExit):
        soak.parse_args(argv)
    assert problem in capsys.readouterr().err
