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
