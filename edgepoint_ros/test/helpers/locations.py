"""Where things are, for tests in either group (no test computes parents[...] itself)."""
from __future__ import annotations

from pathlib import Path

TEST_DIR = Path(__file__).resolve().parents[1]   # edgepoint_ros/test
PACKAGE_DIR = TEST_DIR.parent                    # edgepoint_ros (package.xml, setup.cfg)
REPO_ROOT = PACKAGE_DIR.parent                   # the repository (scripts/, install/)
SHARED_DIR = REPO_ROOT.parent / "shared"         # ../shared: data, models and tools, when present
DATA_DIR = TEST_DIR / "helpers" / "data"         # fixtures kept with the tests
