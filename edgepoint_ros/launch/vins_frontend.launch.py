"""Extractor + tracking matcher as the feature tracker of VINS-Fusion.

    ros2 launch edgepoint_ros vins_frontend.launch.py image:=/cam0/image_raw
    ros2 launch edgepoint_ros vins_frontend.launch.py image:=/cam0/image_raw \
        camera_info:=/cam0/camera_info model:=edgepoint device:=cuda

Settings: config/extractor.yaml and config/matcher.yaml, then
config/vins_frontend.yaml (VINS-like: 150 keypoints, frame-to-frame tracking,
F-RANSAC at 1 px, `feature` published), then `params_file` if given. The
matcher's `feature` (sensor_msgs/PointCloud, VINS-Fusion's feature-tracker
layout) is remapped to `feature_topic` (default /feature_tracker/feature,
what vins_estimator subscribes to); run vins_estimator without its own
feature_tracker. CameraInfo is required (`camera_info`, default: next to the
image topic); without a usable one (none, K = 0, stale, another image size)
the matcher logs a WARN saying that `feature_topic` is not published, and
publishes no features until one arrives (then an INFO line says so).
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
    image = LaunchConfiguration("image").perform(context)
    camera_info = LaunchConfiguration("camera_info").perform(context) or _next_to(image,
                                                                                "camera_info")
    user_file = LaunchConfiguration("params_file").perform(context)
    model = LaunchConfiguration("model").perform(context)
    device = LaunchConfiguration("device").perform(context)
    transport = LaunchConfiguration("image_transport").perform(context)
    overrides = {name: value for name, value in (("model", model), ("device", device),
                                                 ("image_transport", transport)) if value}
    user = [user_file] if user_file else []
    vins = config + "vins_frontend.yaml"
    remappings = [("image", image), ("image/compressed", image + "/compressed"),
                  ("camera_info", camera_info),
                  ("feature", LaunchConfiguration("feature_topic").perform(context))]
    extractor = Node(package=PACKAGE, executable="extractor", name="extractor",
                     namespace=LaunchConfiguration("namespace"), output="screen",
                     parameters=[config + "extractor.yaml", vins, *user]
                     + ([overrides] if overrides else []),
                     remappings=remappings)
    matcher = Node(package=PACKAGE, executable="matcher", name="matcher",
                   namespace=LaunchConfiguration("namespace"), output="screen",
                   parameters=[config + "matcher.yaml", vins, *user], remappings=remappings)
    return [extractor, matcher]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/cam0/image_raw",
                              description="camera image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("camera_info", default_value="",
                              description="CameraInfo topic (default: <image's namespace>/"
                                          "camera_info)"),
        DeclareLaunchArgument("feature_topic", default_value="/feature_tracker/feature",
                              description="where the VINS feature PointCloud goes"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="extra parameter YAML applied after config/*.yaml"),
        DeclareLaunchArgument("model", default_value="",
                              description="edgepoint | xfeat | orb | sift "
                                          "(default: extractor.yaml)"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto | cpu | cuda | tensorrt | gpu | npu "
                                          "(default: extractor.yaml)"),
        DeclareLaunchArgument("image_transport", default_value="",
                              description="raw | compressed: subscribe to the image topic or "
                                          "to <image>/compressed (default: extractor.yaml)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of both nodes"),
        OpaqueFunction(function=_nodes),
    ])
