"""Extractor + matcher on a camera stream.

    ros2 launch edgepoint_ros edgepoint.launch.py image:=/camera/image_raw
    ros2 launch edgepoint_ros edgepoint.launch.py image:=/cam/image model:=xfeat device:=cuda
    ros2 launch edgepoint_ros edgepoint.launch.py params_file:=/path/my_overrides.yaml

Settings come from the package's config/extractor.yaml and config/matcher.yaml;
`params_file` (optional) is applied after them, so it only needs the values it
changes (sections keyed by node name or /**). `model` and `device`, when given,
override both. The subscriptions `image` and `image/compressed` are remapped to
`<image>` and `<image>/compressed`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "edgepoint_ros"


def _nodes(context):
    config = FindPackageShare(PACKAGE).perform(context) + "/config/"
    image = LaunchConfiguration("image").perform(context)
    user_file = LaunchConfiguration("params_file").perform(context)
    model = LaunchConfiguration("model").perform(context)
    device = LaunchConfiguration("device").perform(context)
    overrides = {name: value for name, value in (("model", model), ("device", device)) if value}
    user = [user_file] if user_file else []
    extractor_parameters = [config + "extractor.yaml", *user] + ([overrides] if overrides else [])
    remappings = [("image", image), ("image/compressed", image + "/compressed")]
    extractor = Node(package=PACKAGE, executable="extractor", name="extractor",
                     namespace=LaunchConfiguration("namespace"), output="screen",
                     parameters=extractor_parameters,
                     remappings=remappings)
    matcher = Node(package=PACKAGE, executable="matcher", name="matcher",
                   namespace=LaunchConfiguration("namespace"), output="screen",
                   parameters=[config + "matcher.yaml", *user],
                   remappings=remappings)
    return [extractor, matcher]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="image",
                              description="camera image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="extra parameter YAML applied after config/*.yaml"),
        DeclareLaunchArgument("model", default_value="",
                              description="edgepoint | xfeat | orb | sift "
                                          "(default: extractor.yaml)"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto | cpu | cuda | tensorrt | gpu | npu "
                                          "(default: extractor.yaml)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of both nodes and their topics"),
        OpaqueFunction(function=_nodes),
    ])
