"""Point the ROS wheels' exported CMake files at this interpreter's headers.

The ros-kilted wheels were built in a manylinux image; their *.cmake files name
/opt/python/cp311-cp311/... include directories that do not exist here, and the
rosidl build of edgepoint_msgs fails on them. Idempotent.
"""
import pathlib
import sys
import sysconfig

import numpy

BUILDER_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILDER_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main(prefix: str) -> int:
    replacements = {
        BUILDER_NUMPY_INCLUDE: numpy.get_include(),
        BUILDER_PY_INCLUDE: sysconfig.get_paths()["include"],
    }
    changed = 0
    for path in pathlib.Path(prefix, "share").rglob("*.cmake"):
        text = path.read_text()
        new = text
        for old, value in replacements.items():
            new = new.replace(old, value)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"  {changed} CMake files rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
