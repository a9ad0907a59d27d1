"""Extractor + matcher on a camera stream.

    ros2 launch edgepoint_ros edgepoint.launch.py image:=/camera/image_raw
    ros2 launch edgepoint_ros edgepoint.launch.py image:=/cam/image model:=xfeat device:=cuda
    ros2 launch edgepoint_ros edgepoint.launch.py image:=/cam/image model_size:=medium precision:=fp32
    ros2 launch edgepoint_ros edgepoint.launch.py params_file:=/path/my_overrides.yaml

Settings come from the package's config/extractor.yaml and config/matcher.yaml;
`params_file` (optional) is applied after them, so it only needs the values it
changes (sections keyed by node name or /**). `model`, `model_size`,
`precision`, `device` and `image_transport`, when given, override both (the
arguments and their choices are the extractor parameters' own,
`edgepoint_ros.ros.parameters.EXTRACTOR_ARGUMENTS`). The subscriptions `image`
and `image/compressed` are remapped to
`<image>` and `<image>/compressed`, `camera_info` (both nodes: normalised
coordinates when the calibration is usable) to `camera_info`, by default the
`camera_info` topic next to the image topic (/cam/image_raw -> /cam/camera_info).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

# The extractor settings a launch argument overrides (name -> choices).
from edgepoint_ros.ros.parameters import EXTRACTOR_ARGUMENTS, launch_argument_description

PACKAGE = "edgepoint_ros"


def _next_to(image: str, name: str) -> str:
    """Topic `name` in the namespace of the image topic: /cam0/image_raw -> /cam0/<name>."""
    return image.rsplit("/", 1)[0] + "/" + name if "/" in image else name


def _nodes(context):
    config = FindPackageShare(PACKAGE).perform(context) + "/config/"
    image = LaunchConfiguration("image").perform(context)
    user_file = LaunchConfiguration("params_file").perform(context)
    overrides = {name: value for name in EXTRACTOR_ARGUMENTS
                 if (value := LaunchConfiguration(name).perform(context))}
    user = [user_file] if user_file else []
    extractor_parameters = [config + "extractor.yaml", *user] + ([overrides] if overrides else [])
    camera_info = LaunchConfiguration("camera_info").perform(context) or _next_to(
        image, "camera_info")
    remappings = [("image", image), ("image/compressed", image + "/compressed"),
                  ("camera_info", camera_info)]
    extractor = Node(package=PACKAGE, executable="extractor", name="extractor",
                     namespace=LaunchConfiguration("namespace"), output="screen",
                     parameters=extractor_parameters,
                     remappings=remappings)
    matcher = Node(package=PACKAGE, executable="matcher", name="matcher",
                   namespace=LaunchConfiguration("namespace"), output="screen",
                   parameters=[config + "matcher.yaml", *user],
                   remappings=remappings)
    return [extractor, matcher]


def extractor_arguments() -> list:
    """The extractor overrides as launch arguments (demo.launch.py declares
    the same ones but image_transport)."""
    return [DeclareLaunchArgument(name, default_value="",
                                  description=launch_argument_description(name))
            for name in EXTRACTOR_ARGUMENTS]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="image",
                              description="camera image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("camera_info", default_value="",
                              description="CameraInfo topic (default: <image's namespace>/"
                                          "camera_info)"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="extra parameter YAML applied after config/*.yaml"),
        *extractor_arguments(),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of both nodes and their topics"),
        OpaqueFunction(function=_nodes),
    ])
