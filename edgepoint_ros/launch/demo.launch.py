"""The embedded demo under `ros2 launch`: player -> extractor -> matcher (+ RViz).

    ros2 launch edgepoint_ros demo.launch.py
    ros2 launch edgepoint_ros demo.launch.py source:=/data/my_video.mp4 model:=xfeat rviz:=false
    ros2 launch edgepoint_ros demo.launch.py model_size:=medium precision:=fp32

The player publishes a real video (config/player.yaml; default opencv-doc's
vtest.avi) as a 640x480, 30 Hz camera on `image`; edgepoint.launch.py starts
the extractor and matcher on it; RViz shows keypoints/debug_image and
matches/debug_image (config/edgepoint.rviz). Without RViz installed (no
`rviz2` package) it says so in one WARN line before anything starts and runs
the rest without it; `rviz:=false` leaves RViz out on purpose. Without
`ros2 launch` (e.g. a PyPI-only ROS install), `scripts/demo.sh` starts the
same executables with the same parameter files and prints a summary.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from edgepoint_ros.ros.parameters import EXTRACTOR_ARGUMENTS, launch_argument_description

PACKAGE = "edgepoint_ros"
# The extractor settings the demo passes on to edgepoint.launch.py: all of
# edgepoint.launch.py's but image_transport (the player publishes raw images).
DEMO_EXTRACTOR_ARGUMENTS = tuple(name for name in EXTRACTOR_ARGUMENTS
                                 if name != "image_transport")
TRUE = ("true", "1", "yes", "on")


def _rviz_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return False
    return True


def _rviz(context):
    """RViz when asked for and installed; else one line saying why not.
    Runs first, so nothing has started when RViz turns out to be missing."""
    if LaunchConfiguration("rviz").perform(context).strip().lower() not in TRUE:
        return []
    if not _rviz_installed():
        import launch.logging
        launch.logging.get_logger("demo.launch.py").warning(
            "RViz is not installed (no package 'rviz2' on AMENT_PREFIX_PATH): running the "
            "demo without it; install rviz2 (e.g. ros-<distro>-rviz2) to see "
            "keypoints/debug_image and matches/debug_image, or pass rviz:=false")
        return []
    share = FindPackageShare(PACKAGE).perform(context)
    return [Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                 arguments=["-d", share + "/config/edgepoint.rviz"])]


def _pipeline(context):
    """Player + edgepoint.launch.py on `image`. Included from here (not
    statically) so that `--show-args` lists only what has an effect in the
    demo: the pipeline's image, camera_info, namespace and image_transport
    are fixed by the player."""
    share = FindPackageShare(PACKAGE).perform(context)
    source = LaunchConfiguration("source").perform(context)
    overrides = {"source": source} if source else {}
    player = Node(package=PACKAGE, executable="player", name="player", output="screen",
                  parameters=[share + "/config/player.yaml",
                              *([overrides] if overrides else [])])
    arguments = {"image": "image", "camera_info": "", "namespace": "", "image_transport": "",
                 "params_file": LaunchConfiguration("params_file").perform(context),
                 **{name: LaunchConfiguration(name).perform(context)
                    for name in DEMO_EXTRACTOR_ARGUMENTS}}
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(share + "/launch/edgepoint.launch.py"),
        launch_arguments=arguments.items())
    return [player, pipeline]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("source", default_value="",
                              description="video file or image directory "
                                          "(default: config/player.yaml)"),
        *(DeclareLaunchArgument(name, default_value="",
                                description=launch_argument_description(name))
          for name in DEMO_EXTRACTOR_ARGUMENTS),
        DeclareLaunchArgument("params_file", default_value="",
                              description="extra parameter YAML for the extractor and "
                                          "matcher, applied after config/*.yaml"),
        DeclareLaunchArgument("rviz", default_value="true",
                              description="start RViz (when installed; without it the demo "
                                          "runs and says so)"),
        OpaqueFunction(function=_rviz),
        OpaqueFunction(function=_pipeline),
    ])
