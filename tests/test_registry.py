"""The model registry and label sets are consistent with each other and with the networks."""
from __future__ import annotations

import re

import numpy as np
import pytest

from realtime.models import MODEL_SPECS, get_spec
from realtime.models.bodypix import HEAD_CHANNELS
from realtime.models.labels import BODYPIX_PARTS, COCO_KEYPOINTS, COCO_SKELETON
from realtime.models.registry import UnknownModelError, weight_files


def test_every_spec_is_complete():
    for name, spec in MODEL_SPECS.items():
        assert spec.name == name
        assert spec.licence and spec.description
        assert spec.weights.filename and (spec.weights.urls or spec.weights.manual)
        assert len(spec.input_mean) == len(spec.input_std) == 3
        assert spec.input_channels in ("RGB", "BGR")


def test_every_file_weights_fetch_downloads_has_a_sha256():
    """`weights fetch` refuses a manual file and checks a downloaded one against its sha256 (none:
    no check): every file is manual or pinned by 64 lower-case hex digits."""
    for name, (_, file) in weight_files().items():
        assert file.manual or file.urls and file.sha256 is not None, f"{name} would be downloaded unverified"
        assert file.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", file.sha256), f"{name}: sha256 {file.sha256!r}"


def test_label_sets_have_distinct_names_and_colours():
    for spec in MODEL_SPECS.values():
        labels = spec.labels
        assert len(set(labels.names)) == len(labels.names)
        palette = labels.palette
        assert palette.shape == (len(labels), 3) and palette.dtype == np.uint8
        assert len({tuple(c) for c in palette}) == len(palette), f"{labels.name}: duplicate colours"
        assert tuple(palette[0]) == (0, 0, 0)


def test_bodypix_parts_match_the_network_and_the_published_order():
    assert len(BODYPIX_PARTS) == HEAD_CHANNELS["part_heatmaps"] + 1
    assert BODYPIX_PARTS.names[1] == "left_face" and BODYPIX_PARTS.names[24] == "right_foot"
    assert BODYPIX_PARTS.names[13:15] == ("torso_front", "torso_back")
    grouped = sorted(i for ids in BODYPIX_PARTS.groups.values() for i in ids)
    assert grouped == list(range(1, 25))
    assert len(COCO_KEYPOINTS) == HEAD_CHANNELS["heatmaps"]
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in COCO_SKELETON)


def test_default_models_are_bodypix_strides_16_and_8():
    assert get_spec("bodypix").output_stride == 16
    assert get_spec("bodypix-s8").output_stride == 8


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownModelError, match="bodypix"):
        get_spec("no-such-model")


def test_network_specs_are_complete_and_apart_from_the_parsers():
    from realtime.models.registry import NETWORK_SPECS, SEGMENTER_SPECS

    assert not set(NETWORK_SPECS) & set(MODEL_SPECS) and not set(SEGMENTER_SPECS) & (set(NETWORK_SPECS) | set(MODEL_SPECS))
    assert set(weight_files()) == set(NETWORK_SPECS) | set(MODEL_SPECS) | set(SEGMENTER_SPECS)
    for name, spec in NETWORK_SPECS.items():
        assert spec.name == name and spec.licence == "Apache-2.0" and spec.description
        assert spec.weights.filename.startswith("mediapipe-") and spec.weights.filename.endswith(".tflite")
        assert all(url.startswith("https://storage.googleapis.com/mediapipe-assets/") for url in spec.weights.urls)
        assert len(spec.weights.sha256) == 64 and spec.weights.size_bytes > 0
        assert len(spec.input_size) == 2 and spec.input_range in ((-1.0, 1.0), (0.0, 1.0))


def test_unknown_network_lists_known_ones():
    from realtime.models.registry import get_network_spec

    with pytest.raises(UnknownModelError, match="blazepose-full"):
        get_network_spec("no-such-network")


def test_segmenter_specs_name_their_architecture_labels_and_manual_download():
    from realtime.models.humanseg import ARCHITECTURES
    from realtime.models.labels import PERSON_BACKGROUND
    from realtime.models.person_mask import PERSON_MASK_SOURCES
    from realtime.models.registry import SEGMENTER_SPECS, get_segmenter_spec

    assert len(SEGMENTER_SPECS) == 6 and set(SEGMENTER_SPECS) <= set(PERSON_MASK_SOURCES)
    for name, spec in SEGMENTER_SPECS.items():
        assert spec.name == name == f"humanseg-{spec.architecture}" and spec.architecture in ARCHITECTURES
        assert spec.licence == "MIT" and spec.input_size == 320 and spec.labels is PERSON_BACKGROUND
        assert spec.weights.filename == f"{name}.pth" and spec.weights.manual and spec.weights.sha256 is None
    assert PERSON_BACKGROUND.names == ("background", "person")
    with pytest.raises(UnknownModelError, match="humanseg-unet-mobilenetv2"):
        get_segmenter_spec("humanseg-unet")
