"""The embedded demo under `ros2 launch`: player -> extractor -> matcher (+ RViz).

    ros2 launch edgepoint_ros demo.launch.py
    ros2 launch edgepoint_ros demo.launch.py source:=/data/my_video.mp4 model:=xfeat rviz:=false

The player publishes a real video (config/player.yaml; default opencv-doc's
vtest.avi) as a 640x480, 30 Hz camera on `image`; edgepoint.launch.py starts
the extractor and matcher on it; RViz shows keypoints/debug_image and
matches/debug_image (config/edgepoint.rviz). Without `ros2 launch` (e.g. a
PyPI-only ROS install), `scripts/demo.sh` starts the same executables with the
same parameter files and prints a summary.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "edgepoint_ros"


def _player(context):
    config = FindPackageShare(PACKAGE).perform(context) + "/config/"
    source = LaunchConfiguration("source").perform(context)
    overrides = {"source": source} if source else {}
    return [Node(package=PACKAGE, executable="player", name="player", output="screen",
                 parameters=[config + "player.yaml", *([overrides] if overrides else [])])]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("source", default_value="",
                              description="video file or image directory "
                                          "(default: config/player.yaml)"),
        DeclareLaunchArgument("model", default_value="",
                              description="edgepoint | xfeat | orb | sift "
                                          "(default: extractor.yaml)"),
        DeclareLaunchArgument("device", default_value="", description="inference device"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz"),
        OpaqueFunction(function=_player),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource([share, "/launch/edgepoint.launch.py"]),
            launch_arguments={"image": "image", "model": LaunchConfiguration("model"),
                              "device": LaunchConfiguration("device")}.items()),
        Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
             arguments=["-d", [share, "/config/edgepoint.rviz"]],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
