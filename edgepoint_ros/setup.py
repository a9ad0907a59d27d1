from glob import glob

from setuptools import find_packages, setup

package_name = "edgepoint_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*")),
    ],
    package_data={package_name: ["weights/*"]},
    include_package_data=True,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="edgepoint_ros maintainers",
    maintainer_email="maintainers@edgepoint-ros.invalid",
    description="Fast learned keypoints and matches for ROS 2 on edge hardware.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "extractor = edgepoint_ros.ros.extractor_node:main",
            "matcher = edgepoint_ros.ros.matcher_node:main",
            "player = edgepoint_ros.ros.player_node:main",
            "stereo_extractor = edgepoint_ros.ros.stereo_node:main",
            "extract = edgepoint_ros.cli.extract:main",
            "evaluate = edgepoint_ros.cli.evaluate:main",
            "benchmark = edgepoint_ros.cli.benchmark:main",
            "train = edgepoint_ros.cli.train:main",
            "export_onnx = edgepoint_ros.cli.export_onnx:main",
            "demo = edgepoint_ros.cli.demo:main",
            "process_bag = edgepoint_ros.cli.process_bag:main",
            "evaluate_sequence = edgepoint_ros.cli.evaluate_sequence:main",
            "soak = edgepoint_ros.cli.soak:main",
            "make_validation_set = edgepoint_ros.cli.make_validation_set:main",
            "prepare_models = edgepoint_ros.cli.prepare_models:main",
            "speed_quality = edgepoint_ros.cli.speed_quality:main",
        ],
    },
)
