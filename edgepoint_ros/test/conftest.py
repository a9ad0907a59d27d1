"""Shared by both test groups: `unit/` (no DDS, no node processes; runs where
ROS is not running) and `ros/` (real nodes in real processes over DDS on
loopback). The helpers in `helpers/` (ros_harness, tiny_networks, locations,
fixture data) are importable from either: `import ros_harness as harness`."""
from __future__ import annotations

import sys
from pathlib import Path

HELPERS = str(Path(__file__).resolve().parent / "helpers")
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)
