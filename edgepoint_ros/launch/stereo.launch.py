"""Stereo extractor on a synchronised camera pair: keypoints per camera, left-right matches.

    ros2 launch edgepoint_ros stereo.launch.py \
        left_image:=/cam0/image_raw right_image:=/cam1/image_raw
    ros2 launch edgepoint_ros stereo.launch.py left_image:=/stereo/left/image_rect \
        right_image:=/stereo/right/image_rect slop:=0.002 model:=xfeat

Settings: config/stereo.yaml, then `params_file` if given, then the `model`,
`device` and `slop` arguments when given. The node (executable
stereo_extractor, cameras [left, right]) reads left/image, left/camera_info,
right/image, right/camera_info, remapped here to the given topics (CameraInfo
defaults to `camera_info` next to each image topic), and publishes
left/keypoints, right/keypoints and stereo/matches in `namespace`.
For more than two cameras, set `cameras` in a params_file and remap
<name>/image and <name>/camera_info of the others the same way.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "edgepoint_ros"


def _next_to(image: str, name: str) -> str:
    """Topic `name` in the namespace of the image topic: /cam0/image_raw -> /cam0/<name>."""
    return image.rsplit("/", 1)[0] + "/" + name if "/" in image else name


def _nodes(context):
    config = FindPackageShare(PACKAGE).perform(context) + "/config/"
    left = LaunchConfiguration("left_image").perform(context)
    right = LaunchConfiguration("right_image").perform(context)
    left_info = LaunchConfiguration("left_camera_info").perform(context) or _next_to(
        left, "camera_info")
    right_info = LaunchConfiguration("right_camera_info").perform(context) or _next_to(
        right, "camera_info")
    user_file = LaunchConfiguration("params_file").perform(context)
    model = LaunchConfiguration("model").perform(context)
    device = LaunchConfiguration("device").perform(context)
    slop = LaunchConfiguration("slop").perform(context)
    transport = LaunchConfiguration("image_transport").perform(context)
    overrides = {name: value for name, value in (("model", model), ("device", device),
                                                 ("image_transport", transport)) if value}
    if slop:
        overrides["slop"] = float(slop)
    parameters = [config + "stereo.yaml", *([user_file] if user_file else []),
                  *([overrides] if overrides else [])]
    remappings = [("left/image", left), ("left/image/compressed", left + "/compressed"),
                  ("left/camera_info", left_info),
                  ("right/image", right), ("right/image/compressed", right + "/compressed"),
                  ("right/camera_info", right_info)]
    return [Node(package=PACKAGE, executable="stereo_extractor", name="stereo_extractor",
                 namespace=LaunchConfiguration("namespace"), output="screen",
                 parameters=parameters, remappings=remappings)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("left_image", default_value="left/image_raw",
                              description="left camera image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("right_image", default_value="right/image_raw",
                              description="right camera image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("left_camera_info", default_value="",
                              description="left CameraInfo (default: next to left_image)"),
        DeclareLaunchArgument("right_camera_info", default_value="",
                              description="right CameraInfo (default: next to right_image)"),
        DeclareLaunchArgument("slop", default_value="",
                              description="synchronisation slop in seconds "
                                          "(default: stereo.yaml)"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="extra parameter YAML applied after stereo.yaml"),
        DeclareLaunchArgument("model", default_value="",
                              description="edgepoint | xfeat | orb | sift "
                                          "(default: stereo.yaml)"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto | cpu | cuda | tensorrt | gpu | npu "
                                          "(default: stereo.yaml)"),
        DeclareLaunchArgument("image_transport", default_value="",
                              description="raw | compressed: subscribe to the image topic or "
                                          "to <image>/compressed (default: stereo.yaml)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its topics"),
        OpaqueFunction(function=_nodes),
    ])
