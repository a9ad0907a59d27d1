import pytest

from edgepoint_ros.config import ExtractorConfig


def test_defaults_validate():
    cfg = ExtractorConfig().validate()
    assert cfg.model == "edgepoint"


@pytest.mark.parametrize("field,value,needle", [
    ("model", "superglue", "model must be one of"),
    ("device", "tpu", "device must be one of"),
    ("precision", "int4", "precision must be one of"),
    ("max_keypoints", -1, "max_keypoints must be >= 0"),
    ("pyramid_levels", 0, "pyramid_levels must be in"),
    ("pyramid_levels", 9, "pyramid_levels must be in"),
    ("pyramid_scale", 1.0, r"pyramid_scale must be in \[0.25, 1\)"),
    ("pyramid_scale", 0.1, r"pyramid_scale must be in \[0.25, 1\)"),
])
def test_bad_values_name_the_field(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        ExtractorConfig(**{field: value}).validate()


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="unknown extractor settings: colour"):
        ExtractorConfig.from_mapping({"colour": "red"})


def test_resize_must_be_both_or_neither():
    with pytest.raises(ValueError, match="resize_width and resize_height"):
        ExtractorConfig(resize_width=640).validate()


def test_pyramid_is_refused_for_models_without_one():
    with pytest.raises(ValueError, match="pyramid_levels > 1 is implemented for edgepoint, not orb"):
        ExtractorConfig(model="orb", pyramid_levels=3).validate()
    assert ExtractorConfig(model="orb", pyramid_levels=1).validate()
