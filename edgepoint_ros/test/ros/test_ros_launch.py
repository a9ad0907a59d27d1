"""The package's four launch files under the real `ros2 launch`, fed by the player.

`ros2 launch` is not on PyPI; ../shared/tools/ros2-launch holds its sources
(launch, launch_ros, ros2cli) and scripts/setup.sh installs them into
.ros2-launch/ (`ros_harness.ros2_launch_environment` does it when missing).
Without ../shared these tests skip; under CI=true they fail instead.

Each test starts one launch file as a user would (`ros2 launch edgepoint_ros
FILE args...`, its own process group), with its documented arguments
(remapped image topics, `params_file` with sections keyed by `/**` and by
node name, `namespace`, `model`, `slop`, `feature_topic`), feeds it with
player processes, checks that Keypoints and Matches arrive where the
arguments say and with the settings the params_file gives, then ends it as
a terminal's Ctrl-C does: SIGINT to the whole process group, so every node
gets SIGINT twice (from the "terminal" and forwarded by launch). Then every
node must close cleanly: launch reports each as "finished cleanly" (exit 0)
without having to escalate to SIGTERM (which it does after 5 s), each logged
its closing line, nothing logged a traceback, "terminate called" or an
error, and no process it started is left running.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time

import pytest
import yaml
from edgepoint_msgs.msg import Keypoints, Matches
from sensor_msgs.msg import CameraInfo, PointCloud

import ros_harness as harness
from edgepoint_ros.ros.qos import OUTPUT_QOS, qos_profile

PLAYER = {"width": 320, "height": 240, "rate_hz": 20.0}
FLOW_MATCHES = 30
START_S = 90.0  # launch + nodes on a loaded machine
STOP_S = 15.0   # launch waits up to 5 s per node before SIGTERM; then its own exit


@pytest.fixture(scope="module")
def probe():
    harness.ros2_launch_environment()  # skip (or fail under CI) before anything starts
    probe = harness.make_probe("test_ros_launch")
    yield probe
    probe.close()


@contextlib.contextmanager
def running(*processes):
    """Always end these (launches and player nodes), whatever the test did."""
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


def params_file(tmp_path, sections: dict):
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump({key: {"ros__parameters": values}
                                    for key, values in sections.items()}))
    return path


def wait_for_count(probe, recording, count: int, launch, timeout: float = START_S):
    ok = probe.wait_until(lambda: len(recording) >= count or launch.process.poll() is not None,
                          timeout)
    assert ok and len(recording) >= count, (
        f"{len(recording)} messages on {recording.topic}, expected {count}; launch log "
        f"{launch.log_path}:\n{launch.log()[-4000:]}")


def ctrl_c_and_check(launch, nodes: list[str]) -> str:
    """Ctrl-C (SIGINT to the process group) and the shutdown contract for
    every node the launch started; returns the launch output."""
    pids = launch.node_pids()
    assert sorted(re.sub(r"-\d+$", "", name) for name in pids) == sorted(nodes), pids
    launch.interrupt_group()
    status = launch.wait(STOP_S)
    log = launch.log()
    assert status == 0, f"ros2 launch exited with {status}:\n{log[-4000:]}"
    harness.assert_clean_output(log, f"ros2 launch {launch.name}")
    assert "sending signal 'SIGTERM'" not in log, \
        f"a node did not stop within 5 s of SIGINT:\n{log[-4000:]}"
    for name, pid in pids.items():
        assert f"[INFO] [{name}]: process has finished cleanly [pid {pid}]" in log, log[-4000:]
        node = re.sub(r"-\d+$", "", name)
        closing = [line for line in log.splitlines()
                   if line.startswith(f"[{name}]") and "closed (SIGINT)" in line]
        assert len(closing) == 1, f"{name}: no closing line:\n{log[-4000:]}"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            raise AssertionError(f"{node} (pid {pid}) is still running after launch exited")
    return log


def player(namespace: str, remappings: dict | None = None, **parameters):
    return harness.wait_ready(
        harness.start_node("player", namespace, {**PLAYER, **parameters},
                           remappings=remappings), "publishing")


def test_demo_launch_offers_only_arguments_that_act():
    result = subprocess.run(
        ["ros2", "launch", "edgepoint_ros", "demo.launch.py", "--show-args"],
        env=harness.ros_environment(harness.DOMAIN_ID, harness.LOG_DIR.parent,
                                    harness.ros2_launch_environment()),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    offered = re.findall(r"^    '(\w+)':", result.stdout, re.MULTILINE)
    assert offered == ["source", "model", "model_size", "precision", "device", "params_file",
                       "rviz"], result.stdout


def test_edgepoint_launch_with_remapped_image_params_file_and_namespace(probe, tmp_path):
    """image:= and its camera_info next to it, namespace:=, params_file:= keyed
    by /** and by node name, model:=."""
    overrides = params_file(tmp_path, {
        "/**": {"diagnostics_period": 0.5},
        "/**/extractor": {"max_keypoints": 123},
        "/**/matcher": {"verification": "homography"}})
    keypoints = probe.record(Keypoints, "/robot1/keypoints", OUTPUT_QOS, keep=100)
    matches = probe.record(Matches, "/robot1/matches", OUTPUT_QOS, keep=100)
    camera = player("/cam", {"image": "image_raw"})
    launch = harness.LaunchProcess("edgepoint.launch.py", "image:=/cam/image_raw",
                                   "namespace:=robot1", f"params_file:={overrides}",
                                   "model:=orb", name="edgepoint")
    with running(launch, camera):
        wait_for_count(probe, matches, FLOW_MATCHES, launch)
        assert all(0 < len(m.x) <= 123 for m in keypoints.snapshot())   # params_file
        assert {m.model for m in keypoints.snapshot()} == {"orb"}         # model:=
        assert all(m.verification == Matches.VERIFICATION_HOMOGRAPHY for m in matches.snapshot())
        log = launch.log()
        for node in ("extractor", "matcher"):  # camera_info remapped next to the image
            assert re.search(rf"\[{node}-\d\] .*\[robot1\.{node}\]: CameraInfo on "
                             r"/cam/camera_info has K = 0", log), log[-3000:]
        ctrl_c_and_check(launch, ["extractor", "matcher"])


def test_demo_launch_runs_without_rviz_and_stops_cleanly(probe):
    """demo.launch.py as the README writes it: on a machine without rviz2 it
    says so before starting anything and runs the pipeline; device:=cuda
    without a usable GPU falls back with one warning (it was printed twice);
    precision:= reaches the extractor through edgepoint.launch.py."""
    import onnxruntime

    rviz = subprocess.run(["ros2", "pkg", "prefix", "rviz2"], capture_output=True,
                          env=harness.ros2_launch_environment(), timeout=60)
    arguments = ["model:=xfeat", "device:=cuda", "precision:=fp32"] + (
        ["rviz:=false"] if rviz.returncode == 0 else [])
    matches = probe.record(Matches, "/matches", OUTPUT_QOS, keep=100)
    launch = harness.LaunchProcess("demo.launch.py", *arguments, name="demo")
    with running(launch):
        wait_for_count(probe, matches, FLOW_MATCHES, launch)
        log = launch.log()
        if rviz.returncode != 0:
            warning = log.find("RViz is not installed (no package 'rviz2'")
            assert 0 <= warning < log.find("process started"), log[-3000:]
        # one WARN line and no plain copy of it (the runtime info quotes it again, in the
        # "built" and "ready" lines)
        text = r"requested runtime=auto device=cuda"
        plain = re.findall(rf"^\[extractor-\d\] {text}", log, re.MULTILINE)
        warned = re.findall(rf"^\[extractor-\d\] \[WARN\] [^:]*: {text}", log, re.MULTILINE)
        no_cuda = "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
        assert not plain and len(warned) == (1 if no_cuda else len(warned)) <= 1, log[-3000:]
        assert re.search(r"\[extractor-\d\] .*model xfeat built .*'precision': 'fp32'", log), \
            log[-3000:]
        ctrl_c_and_check(launch, ["player", "extractor", "matcher"])


def test_stereo_launch_with_remapped_cameras_slop_and_namespace(probe, tmp_path):
    overrides = params_file(tmp_path, {"/rig/stereo_extractor": {"max_keypoints": 200},
                                       "/**": {"diagnostics_period": 0.5}})
    left = probe.record(Keypoints, "/rig/left/keypoints", OUTPUT_QOS, keep=100)
    right = probe.record(Keypoints, "/rig/right/keypoints", OUTPUT_QOS, keep=100)
    matches = probe.record(Matches, "/rig/stereo/matches", OUTPUT_QOS, keep=100)
    cameras = [player(f"/stereo_cams/{side}", {"image": "image_raw"}) for side in
               ("left", "right")]
    launch = harness.LaunchProcess(
        "stereo.launch.py", "left_image:=/stereo_cams/left/image_raw",
        "right_image:=/stereo_cams/right/image_raw", "slop:=0.03", "model:=orb",
        "namespace:=rig", f"params_file:={overrides}", name="stereo")
    with running(launch, *cameras):
        wait_for_count(probe, matches, FLOW_MATCHES, launch)
        assert len(left) and len(right)
        assert all(0 < len(m.x) <= 200 for m in left.snapshot() + right.snapshot())
        assert all(len(m.distances) > 0 for m in matches.snapshot())
        log = launch.log()
        for side in ("left", "right"):
            assert f"CameraInfo on /stereo_cams/{side}/camera_info has K = 0" in log
        assert "slop 0.03 s" in log
        ctrl_c_and_check(launch, ["stereo_extractor"])


def test_vins_frontend_launch_warns_without_calibration_then_publishes_features(probe):
    """Without a usable CameraInfo the matcher says `feature` is not published;
    with one, VINS features arrive on /feature_tracker/feature."""
    features = probe.record(PointCloud, "/feature_tracker/feature", OUTPUT_QOS, keep=50)
    matches = probe.record(Matches, "/matches", OUTPUT_QOS, keep=100)
    info = probe.publisher(CameraInfo, "/cam0/camera_info", qos_profile("reliable"))
    # the player's own CameraInfo (K = 0) goes elsewhere: this test sends the calibration
    camera = player("/cam0", {"image": "image_raw", "camera_info": "player_camera_info"})
    launch = harness.LaunchProcess("vins_frontend.launch.py", "model:=orb", name="vins")
    with running(launch, camera):
        wait_for_count(probe, matches, FLOW_MATCHES, launch)
        assert launch.wait_for_log("(VINS features) is not published until a calibrated "
                                   "CameraInfo for 320x240 arrives", 10.0), launch.log()[-3000:]
        assert re.search(r"\[matcher-\d\] \[WARN\] .*no usable CameraInfo on /cam0/camera_info "
                         r"\(calibration missing\): /feature_tracker/feature", launch.log())
        assert len(features) == 0
        calibration = {**harness.PLUMB_BOB_640, "width": 320, "height": 240,
                       "k": [229.0, 0.0, 159.5, 0.0, 228.5, 119.5, 0.0, 0.0, 1.0]}
        deadline = time.monotonic() + 30.0
        while len(features) < 5 and time.monotonic() < deadline:
            info.publish(harness.camera_info_msg(probe.now_msg(), **calibration))
            time.sleep(0.05)  # a camera driver's CameraInfo rate
        assert len(features) >= 5, launch.log()[-3000:]
        cloud = features.snapshot()[-1]
        assert len(cloud.points) > 0 and all(p.z == 1.0 for p in cloud.points)
        assert "publishing VINS features on /feature_tracker/feature" in launch.log()
        ctrl_c_and_check(launch, ["extractor", "matcher"])
