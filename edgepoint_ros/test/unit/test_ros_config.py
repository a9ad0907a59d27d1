"""config/*.yaml, launch files and the RViz layout agree with the code.

A fast first line without DDS: the launch files are checked as Python source
with `ast` (every executable they start exists in setup.py, every file they
name exists, every launch argument they read is declared); test/ros/
test_ros_launch.py runs them under the real `ros2 launch`. The node YAML
files show exactly the defaults declared in code, and the parameters of the
settings dataclasses carry their fields' setting() metadata.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from edgepoint_ros.config import DEVICES, EDGEPOINT_SIZES, MODELS, PRECISIONS, ExtractorConfig
from edgepoint_ros.frontend import PAIR_SETTINGS
from edgepoint_ros.ros import parameters
from edgepoint_ros.tracking import TrackerConfig

PACKAGE_DIR = Path(__file__).resolve().parents[2]
CONFIG_DIR = PACKAGE_DIR / "config"
LAUNCH_DIR = PACKAGE_DIR / "launch"


def _ros_parameters(node: str) -> dict:
    document = yaml.safe_load((CONFIG_DIR / f"{node}.yaml").read_text())
    assert list(document) == ["/**"], f"{node}.yaml must apply to /** only"
    return document["/**"]["ros__parameters"]


@pytest.mark.parametrize("node", sorted(parameters.NODE_PARAMETERS))
def test_yaml_holds_exactly_the_declared_parameters_with_valid_values(node):
    values = _ros_parameters(node)
    declared = {spec.name: spec for spec in parameters.NODE_PARAMETERS[node]}
    assert set(values) - set(declared) == set(), "keys the node does not declare"
    assert set(declared) - set(values) == set(), "declared parameters missing in the YAML"
    for name, value in values.items():
        # The YAML type must be the declared one: rclpy refuses 0 for a double.
        assert type(value) is type(declared[name].default), (name, value)
        assert declared[name].check(value) is None


@pytest.mark.parametrize("node", sorted(parameters.NODE_PARAMETERS))
def test_yaml_values_are_the_code_defaults(node):
    """One source for every default: the node YAML files show the declared
    defaults (so `ros2 run` and `ros2 launch` start the same thing); a real
    override belongs in a params_file of its own."""
    values = _ros_parameters(node)
    declared = {spec.name: spec for spec in parameters.NODE_PARAMETERS[node]}
    differing = {name: (value, declared[name].default) for name, value in values.items()
                 if name in declared and value != declared[name].default}
    assert differing == {}, f"{node}.yaml (value, code default) differ: {differing}"


def test_extractor_parameters_mirror_extractor_config_and_default_to_a_learned_model():
    names = [spec.name for spec in parameters.EXTRACTOR_PARAMETERS]
    assert names[:len(ExtractorConfig.field_names())] == list(ExtractorConfig.field_names())
    defaults = ExtractorConfig()
    for spec in parameters.EXTRACTOR_PARAMETERS[:len(ExtractorConfig.field_names())]:
        assert spec.default == getattr(defaults, spec.name)
        assert spec.description and "see config.py" not in spec.description
    config = parameters.extractor_config(_ros_parameters("extractor"))
    assert config.model == "edgepoint"


@pytest.mark.parametrize("node,settings,names", [
    ("extractor", ExtractorConfig, ExtractorConfig.field_names()),
    ("stereo", ExtractorConfig, ExtractorConfig.field_names()),
    ("matcher", TrackerConfig, TrackerConfig.field_names()),
    ("stereo", TrackerConfig, PAIR_SETTINGS),
])
def test_settings_parameters_carry_the_field_metadata(node, settings, names):
    """One source for each setting: the parameter of a settings field has the
    field's default, description, choices and bounds, and refuses exactly
    what validate() refuses."""
    declared = {spec.name: spec for spec in parameters.NODE_PARAMETERS[node]}
    defaults = settings()
    for name in names:
        spec, info = declared[name], settings.settings()[name]
        assert spec.default == getattr(defaults, name)
        assert spec.description == info.description and len(spec.description) > 20, name
        assert spec.setting == info, name
        assert spec.constraints == info.allowed()
        bounds = [b for b in (info.minimum, info.maximum, info.below) if b is not None]
        candidates = {0, spec.default, *bounds, *(b - 1 for b in bounds), *(b + 1 for b in bounds),
                      *(b * 0.999 for b in bounds if isinstance(b, float))}
        for value in candidates if bounds else ():
            value = type(spec.default)(value)
            assert (spec.check(value) is None) == (info.problem(name, value) is None), (name,
                                                                                      value)


def test_settings_validate_their_choices_and_bounds_from_the_metadata():
    assert ExtractorConfig.settings()["model"].choices == MODELS
    assert parameters.EXTRACTOR_ARGUMENTS == {
        "model": MODELS, "model_size": EDGEPOINT_SIZES, "precision": PRECISIONS,
        "device": DEVICES, "image_transport": ("raw", "compressed")}
    with pytest.raises(ValueError, match=r"nms_radius must be in \[0, 100\]; got 101"):
        ExtractorConfig(nms_radius=101).validate()
    with pytest.raises(ValueError, match=r"num_threads must be >= 0 \(0 = the runtime's "):
        ExtractorConfig(num_threads=-1).validate()
    with pytest.raises(ValueError, match=r"max_distance must be >= 0 \(0 = no limit\)"):
        TrackerConfig(max_distance=-1.0).validate()
    with pytest.raises(ValueError, match="ransac_confidence must be in"):
        TrackerConfig(ransac_confidence=1.0).validate()
    with pytest.raises(ValueError, match="must be a finite number"):
        TrackerConfig(max_distance=float("inf")).validate()
    assert ExtractorConfig(resize_width=32, resize_height=16384).validate()
    spec = {s.name: s for s in parameters.EXTRACTOR_PARAMETERS}
    assert "resize_width must be 0 (native size) or in [32, 16384]" in spec[
        "resize_width"].check(8)
    assert spec["resize_width"].check(0) is None
    assert "pyramid_scale must be in [0.25, 1); got 1.0" in spec["pyramid_scale"].check(1.0)


def test_parameter_checks_name_the_problem():
    spec = {s.name: s for s in parameters.MATCHER_PARAMETERS}
    assert "parameter ratio must be in [0, 1] (0 = off); got 1.5" in spec["ratio"].check(1.5)
    assert "parameter ratio must be a finite number" in spec["ratio"].check(float("nan"))
    assert "must be of type float" in spec["ratio"].check("0.8")
    assert "must be one of" in spec["qos"].check("fast")
    assert spec["ratio"].check(0) is None  # an int is a fine double
    with pytest.raises(ValueError, match="unknown extractor settings"):
        ExtractorConfig.from_mapping({"max_keypoint": 5})


def _console_scripts() -> set[str]:
    tree = ast.parse((PACKAGE_DIR / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(item).split("=")[0].strip() for item in value.elts}
    raise AssertionError("no console_scripts in setup.py")


def _calls(tree, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name:
            yield node


def _keyword(call, name):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _launch_namespace(tree) -> dict:
    """What a launch file's argument names can come from: the names it imports
    from edgepoint_ros (importable here, unlike launch_ros, so the launch files
    themselves are not) and its module-level assignments that need nothing
    else."""
    namespace: dict = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgepoint_ros"):
            exec(compile(ast.Module([node], []), "<launch file>", "exec"), namespace)
        elif isinstance(node, ast.Assign):
            try:
                exec(compile(ast.Module([node], []), "<launch file>", "exec"), namespace)
            except Exception:  # needs launch or launch_ros: names no argument
                pass
    return namespace


def _argument_names(tree, function: str) -> set[str]:
    """The names passed first to every call of `function` (DeclareLaunchArgument,
    LaunchConfiguration): a string literal, or a name bound by an enclosing
    comprehension, evaluated over the comprehension's iterables (e.g. the
    shared parameters.EXTRACTOR_ARGUMENTS; its conditions left out: every name
    it can produce)."""
    namespace = _launch_namespace(tree)
    parents = {child: parent for parent in ast.walk(tree)
               for child in ast.iter_child_nodes(parent)}
    names = set()
    for call in _calls(tree, function):
        argument = call.args[0]
        if isinstance(argument, ast.Constant):
            names.add(argument.value)
            continue
        node = parents.get(call)
        while not isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            assert node is not None, (f"{function}({ast.unparse(argument)}): neither a "
                                      "literal nor a name a comprehension binds")
            node = parents.get(node)
        loops = [ast.comprehension(target=g.target, iter=g.iter, ifs=[], is_async=0)
                 for g in node.generators]
        expression = ast.fix_missing_locations(
            ast.Expression(ast.ListComp(elt=argument, generators=loops)))
        names.update(eval(compile(expression, "<launch file>", "eval"), dict(namespace)))
    assert all(isinstance(name, str) for name in names), names
    return names


@pytest.mark.parametrize("launch_file", ["edgepoint.launch.py", "demo.launch.py",
                                         "stereo.launch.py", "vins_frontend.launch.py"])
def test_launch_file_references_existing_executables_files_and_arguments(launch_file):
    tree = ast.parse((LAUNCH_DIR / launch_file).read_text())
    scripts = _console_scripts()
    executables = []
    for call in _calls(tree, "Node"):
        package = ast.literal_eval(_keyword(call, "package")) if isinstance(
            _keyword(call, "package"), ast.Constant) else "edgepoint_ros"
        executable = ast.literal_eval(_keyword(call, "executable"))
        if package == "edgepoint_ros":
            assert executable in scripts, f"{launch_file} starts unknown executable {executable}"
        executables.append(executable)
    assert executables, f"{launch_file} starts no node"
    strings = [node.value for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    referenced = [s.rsplit("/", 1)[-1] for s in strings  # file names, not prose
                  if s.endswith((".yaml", ".rviz", ".launch.py")) and not set(s) & set(" *")]
    assert referenced, f"{launch_file} names no parameter file"
    for name in referenced:
        folder = LAUNCH_DIR if name.endswith(".launch.py") else CONFIG_DIR
        assert (folder / name).is_file(), f"{launch_file} names missing file {name}"
    declared = _argument_names(tree, "DeclareLaunchArgument")
    used = _argument_names(tree, "LaunchConfiguration")
    assert used, f"{launch_file} reads no launch argument"
    assert used <= declared, f"undeclared launch arguments {used - declared}"
    assert "generate_launch_description" in {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_pipeline_launch_offers_the_documented_arguments():
    tree = ast.parse((LAUNCH_DIR / "edgepoint.launch.py").read_text())
    declared = _argument_names(tree, "DeclareLaunchArgument")
    assert {"image", "params_file", "model", "model_size", "precision", "device",
            "image_transport"} <= declared
    demo = _argument_names(ast.parse((LAUNCH_DIR / "demo.launch.py").read_text()),
                           "DeclareLaunchArgument")
    assert {"model", "model_size", "precision", "device", "params_file"} <= demo
    assert {ast.literal_eval(_keyword(call, "executable")) for call in _calls(tree, "Node")} == {
        "extractor", "matcher"}


def test_rviz_layout_shows_both_debug_images():
    layout = yaml.safe_load((CONFIG_DIR / "edgepoint.rviz").read_text())
    displays = layout["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert topics == {"/keypoints/debug_image", "/matches/debug_image"}


def test_the_node_runtime_path_does_not_import_torch():
    """Robots run the nodes with onnxruntime/openvino + numpy + opencv only."""
    import subprocess
    import sys

    code = (
        "import sys, yaml\n"
        "from edgepoint_ros.ros import extractor_node, matcher_node, player_node, parameters\n"
        "from edgepoint_ros.ros import stereo_node\n"
        "from edgepoint_ros.models import create_model\n"
        "from edgepoint_ros.harness.processes import config_path\n"
        "values = yaml.safe_load(config_path('extractor.yaml').read_text())"
        "['/**']['ros__parameters']\n"
        "model = create_model(parameters.extractor_config(values))\n"
        "model.extract(__import__('numpy').zeros((120, 160, 3), 'uint8'))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_setting_with_both_upper_bounds_is_refused_however_it_is_declared():
    from edgepoint_ros.config import setting
    with pytest.raises(ValueError, match="give maximum or below, not both"):
        setting(1.0, "A number.", maximum=1.0, below=2.0)
    with pytest.raises(ValueError, match="give maximum or below, not both"):
        parameters.parameter("x", 1.0, "A number.", maximum=1.0, below=2.0)
