"""The package's layers import one way (setup.cfg [importlinter], run by lint-imports).

cli > harness > ros > evaluation > training > bags > frontend > tracking >
drawing > models > runtimes > core (features, config, geometry, detection,
descriptors, matching, paths, camera models, calibration state, stream sync,
newest-frame worker, frame statistics, frame source, shutdown, message
conversions): a module imports only its own layer's and lower layers'
modules, and no package has an import cycle among its modules.
"""
from __future__ import annotations

import ast
import configparser
import shutil
import subprocess

import pytest

import locations

PACKAGE = locations.PACKAGE_DIR
SETUP_CFG = PACKAGE / "setup.cfg"


def test_layer_contracts_hold():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports (import-linter, requirements.txt) is not installed")
    result = subprocess.run([lint, str(SETUP_CFG), "--no-cache"], cwd=PACKAGE,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_contracts_have_no_exceptions_and_cover_every_module():
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    contracts = [s for s in config.sections() if s.startswith("importlinter:contract:")]
    assert contracts and not any(config.has_option(s, "ignore_imports") for s in contracts)
    layers = config.get("importlinter:contract:layers", "layers").split()
    named = {name.split(".")[1] for name in layers if name.startswith("edgepoint_ros.")}
    present = {p.stem for p in (PACKAGE / "edgepoint_ros").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert present - named == set(), "modules outside every layer (unchecked)"


def test_no_module_imports_the_package_by_string():
    """importlib or __import__ with an edgepoint_ros name would hide an import
    from the layer check."""
    offenders = []
    for path in (PACKAGE / "edgepoint_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("import_module", "__import__") and any(
                        isinstance(a, ast.Constant) and isinstance(a.value, str)
                        and ("edgepoint_ros" in a.value or a.value.startswith("."))
                        for a in node.args):
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
