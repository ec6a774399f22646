"""Model specs: what each named model is, where its weights come from, how to feed it.

Architectures never see this module's URLs; loaders read a spec and build from it.
"""
from __future__ import annotations

from dataclasses import dataclass

from realtime.models.labels import (
    ATR_PARTS,
    BODYPIX_PARTS,
    CIHP_PARTS,
    COCO_PANOPTIC,
    LIP_PARTS,
    PASCAL_PERSON_PARTS,
    PERSON_BACKGROUND,
    LabelSet,
)
from realtime.weights import WeightFile


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    description: str
    labels: LabelSet
    weights: WeightFile
    licence: str
    input_mean: tuple[float, float, float]
    input_std: tuple[float, float, float]
    input_channels: str  # "RGB" or "BGR"
    internal_size: int  # default network input: the frame's long side is scaled to this
    output_stride: int
    multi_person: bool = False
    licence_notice: str | None = None  # shown whenever the model is loaded

    @property
    def num_classes(self) -> int:
        return len(self.labels)


_BODYPIX_SOURCE = "https://raw.githubusercontent.com/keijiro/BodyPixSentis/main/Packages/jp.keijiro.bodypix/ONNX/"


def _bodypix_spec(name: str, *, stride: int, sha256: str, size_bytes: int, note: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="bodypix",
        description=f"BodyPix 2 MobileNetV1 x0.50, output stride {stride}{note}",
        labels=BODYPIX_PARTS,
        weights=WeightFile(
            filename=f"bodypix-mobilenetv1-050-stride{stride}.onnx",
            urls=(_BODYPIX_SOURCE + f"MobileNetV1-x050-stride{stride}.onnx",),
            sha256=sha256,
            size_bytes=size_bytes,
        ),
        licence="Apache-2.0",
        # network input: RGB, (x - 127.5) / 127.5
        input_mean=(127.5, 127.5, 127.5),
        input_std=(127.5, 127.5, 127.5),
        input_channels="RGB",
        internal_size=449,
        output_stride=stride,
    )


MODEL_SPECS: dict[str, ModelSpec] = {
    "bodypix": _bodypix_spec("bodypix", stride=16, size_bytes=2438662,
                             sha256="f2e51d18eec8e3c9ef3f196ea0245db1d86529161d19e14466ad4ebc5e6ee242",
                             note=": 24 parts, person mask, 17 keypoints"),
    "bodypix-s8": _bodypix_spec("bodypix-s8", stride=8, size_bytes=2438661,
                                sha256="cf422e7ce8176968cac3e422a839b238141e33ff7028d92c8c999d7b3c1f6820",
                                note=" (finer masks, ~3x slower)"),
}

_M2FP_NOTICE = (
    "M2FP weights (ModelScope damo/cv_resnet101_image-{}-human-parsing) are licensed "
    "CC BY-NC 4.0: non-commercial use only, with attribution."
)
_MODELSCOPE = "https://modelscope.cn/models/damo/cv_resnet101_image-{}-human-parsing"


def _m2fp_spec(name: str, *, single: bool) -> ModelSpec:
    kind = "single" if single else "multiple"
    filename = f"{name}-r101.pt"
    return ModelSpec(
        name=name,
        family="m2fp",
        description=(
            "M2FP ResNet-101 (Mask2Former for parsing), LIP: 20 classes, one person, 59.86 mIoU" if single else
            "M2FP ResNet-101 (Mask2Former for parsing), CIHP: 20 classes, every person as an instance, 69.15 mIoU"
        ),
        labels=LIP_PARTS if single else CIHP_PARTS,
        weights=WeightFile(
            filename=filename,
            urls=(_MODELSCOPE.format(kind),),
            sha256=None,
            size_bytes=None,
            manual=(
                f"Download pytorch_model.pt from the ModelScope model {_MODELSCOPE.format(kind)} (Files tab) "
                f"and rename it to {filename}."
            ),
        ),
        licence="CC-BY-NC-4.0",
        licence_notice=_M2FP_NOTICE.format(kind),
        input_mean=(123.675, 116.28, 103.53),
        input_std=(58.395, 57.12, 57.375),
        input_channels="RGB",
        # single person: fixed 384 x 512 canvas; multi-person: the frame's short side
        internal_size=512 if single else 640,
        output_stride=4,
        multi_person=not single,
    )


_SCHP_DRIVE = "https://drive.google.com/file/d/{}/view?usp=sharing"


def _schp_spec(name: str, labels: LabelSet, filename: str, drive_id: str, input_size: int, miou: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="schp",
        description=f"SCHP ResNet-101 (AugmentCE2P), {labels.name.upper()}: {len(labels)} classes, one person, {miou} mIoU",
        labels=labels,
        weights=WeightFile(
            filename=filename,
            urls=(_SCHP_DRIVE.format(drive_id),),
            sha256=None,
            size_bytes=None,
            manual=(
                f"Download {filename} from Google Drive ({_SCHP_DRIVE.format(drive_id)}), linked from "
                "https://github.com/GoGoDuck912/Self-Correction-Human-Parsing (README, 'Trained models')."
            ),
        ),
        licence="MIT",
        # network input: BGR, (x / 255 - mean) / std; in 0..255 units, BGR order
        input_mean=(103.53, 116.28, 123.675),
        input_std=(57.375, 57.12, 58.395),
        input_channels="BGR",
        internal_size=input_size,  # side of the square input the frame's box is warped to
        output_stride=4,
    )


MODEL_SPECS.update({
    "m2fp-lip": _m2fp_spec("m2fp-lip", single=True),
    "m2fp-cihp": _m2fp_spec("m2fp-cihp", single=False),
    "schp-lip": _schp_spec("schp-lip", LIP_PARTS, "exp-schp-201908261155-lip.pth",
                           "1ZrTiadzAOM332d896fw7JZQ2lWALedDB", 473, "59.36"),
    "schp-atr": _schp_spec("schp-atr", ATR_PARTS, "exp-schp-201908301523-atr.pth",
                           "1klCtqx51orBkFKdkvYwM4qao_vEFbJ_z", 512, "82.29"),
    "schp-pascal": _schp_spec("schp-pascal", PASCAL_PERSON_PARTS, "exp-schp-201908270938-pascal-person-part.pth",
                              "13ph1AloYNiC4DIGOyCLZdmA08tP9OeGu", 512, "71.46"),
})

_M2F_MODELSCOPE = "https://modelscope.cn/models/damo/cv_r50_panoptic-segmentation_cocopan"
_M2F_MODEL_ZOO = ("https://dl.fbaipublicfiles.com/maskformer/mask2former/coco/panoptic/maskformer2_R50_bs16_50ep/"
                  "model_final_94dc52.pkl")
_M2F_FILE = "mask2former-r50-panoptic.pt"

MODEL_SPECS["mask2former-r50-panoptic"] = ModelSpec(
    name="mask2former-r50-panoptic",
    family="mask2former_panoptic",
    description="Mask2Former ResNet-50, COCO panoptic: 133 classes (80 things, 53 stuff), every person as an "
                "instance",
    labels=COCO_PANOPTIC,
    weights=WeightFile(
        filename=_M2F_FILE,
        urls=(_M2F_MODELSCOPE, _M2F_MODEL_ZOO),
        sha256=None,
        size_bytes=None,
        manual=(
            f"Download pytorch_model.pt from the ModelScope model {_M2F_MODELSCOPE} (Files tab; EasyCV, "
            f"Apache-2.0), or the facebookresearch Mask2Former model zoo checkpoint {_M2F_MODEL_ZOO} (detectron2 "
            f".pkl, PQ 51.9, MIT), and save it as {_M2F_FILE}: either layout is read (by content, not name)."
        ),
    ),
    licence="Apache-2.0",
    input_mean=(123.675, 116.28, 103.53),
    input_std=(58.395, 57.12, 57.375),
    input_channels="RGB",
    internal_size=800,  # the short side, as EasyCV's test pipeline (1333 x 800) scales it
    output_stride=4,
    multi_person=True,
)

_UNIPARSER_REPO = "https://github.com/cjm-sfw/Uniparser"
_UNIPARSER_FILE = "UniParser_CIHP_r101_light.pth"

MODEL_SPECS["uniparser-cihp"] = ModelSpec(
    name="uniparser-cihp",
    family="uniparser",
    description=("UniParser ResNet-101 DCNv2 'light' (instances and parts in one cosine space), CIHP: "
                 "20 classes, every person as an instance (paper: 60.4 AP on CIHP)"),
    labels=CIHP_PARTS,
    weights=WeightFile(
        filename=_UNIPARSER_FILE,
        urls=(_UNIPARSER_REPO,),
        sha256=None,
        size_bytes=None,
        manual=(
            f"{_UNIPARSER_FILE} (mmdet checkpoint of configs/repparsing/"
            "CHIP_r101_fpn_half_gpu_6x_repparsing_DCN_fusion_metrics_noneg_cluster_light.py) is shared by the "
            f"authors of {_UNIPARSER_REPO} through BaiduNetdisk, not from a direct link: ask them for it "
            "(see the repository's README and issues) and keep the file name."
        ),
    ),
    # The repository has no LICENSE file; its setup.py carries mmdetection's Apache-2.0 for the
    # vendored mmdet code, which says nothing about the trained weights.
    licence="unspecified",
    licence_notice=(
        "UniParser's weights come without a licence (github.com/cjm-sfw/Uniparser states none): "
        "ask the authors before any use beyond research."
    ),
    input_mean=(123.675, 116.28, 103.53),
    input_std=(58.395, 57.12, 57.375),
    input_channels="RGB",
    internal_size=800,  # the frame's short side (long side capped at 1333 / 800 of it), mmdet's test scale
    output_stride=4,
    multi_person=True,
)

DEFAULT_MODEL = "bodypix"


@dataclass(frozen=True)
class NetworkSpec:
    """A network that is not a parser (a detector, a landmark model, a person segmenter): its
    weights file and how to feed it. `weights list/verify/fetch` cover these with the parsers."""

    name: str
    family: str
    description: str
    weights: WeightFile
    licence: str
    input_size: tuple[int, int]  # (height, width) of the network input
    input_range: tuple[float, float]  # RGB 0..255 mapped linearly onto this range


_MEDIAPIPE_ASSETS = "https://storage.googleapis.com/mediapipe-assets/"


def _mediapipe_spec(name: str, family: str, description: str, *, asset: str, generation: str, sha256: str,
                    size_bytes: int, input_size: tuple[int, int], input_range: tuple[float, float]) -> NetworkSpec:
    # The URLs and sha256 MediaPipe's own build pins (third_party/external_files.bzl); the
    # mediapipe==0.10.14 wheel ships the same bytes (mediapipe/modules/<graph>/<asset>).
    weights = WeightFile(
        filename=f"mediapipe-{asset}",
        urls=(f"{_MEDIAPIPE_ASSETS}{asset}?generation={generation}", _MEDIAPIPE_ASSETS + asset),
        sha256=sha256,
        size_bytes=size_bytes,
    )
    return NetworkSpec(name=name, family=family, description=description, weights=weights, licence="Apache-2.0",
                       input_size=input_size, input_range=input_range)


NETWORK_SPECS: dict[str, NetworkSpec] = {spec.name: spec for spec in (
    _mediapipe_spec("blazepose-detector", "blazepose",
                    "BlazePose person detector (MediaPipe Pose): 224x224, 2254 SSD anchors, box + 4 keypoints",
                    asset="pose_detection.tflite", generation="1678737489600422",
                    sha256="9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c", size_bytes=2959046,
                    input_size=(224, 224), input_range=(-1.0, 1.0)),
    _mediapipe_spec("blazepose-full", "blazepose",
                    "BlazePose GHUM 3D landmarks, full: 256x256 ROI, 33 landmarks, world landmarks, segmentation",
                    asset="pose_landmark_full.tflite", generation="1661875894245786",
                    sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f", size_bytes=6440512,
                    input_size=(256, 256), input_range=(0.0, 1.0)),
    _mediapipe_spec("selfie", "selfie_segmenter", "MediaPipe selfie segmenter, general: 256x256 person probability",
                    asset="selfie_segmentation.tflite", generation="1683332563830600",
                    sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c", size_bytes=249505,
                    input_size=(256, 256), input_range=(0.0, 1.0)),
    _mediapipe_spec("selfie-landscape", "selfie_segmenter",
                    "MediaPipe selfie segmenter, landscape: 144x256 person probability",
                    asset="selfie_segmentation_landscape.tflite", generation="1683332561312022",
                    sha256="a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd", size_bytes=250145,
                    input_size=(144, 256), input_range=(0.0, 1.0)),
)}


@dataclass(frozen=True)
class SegmenterSpec:
    """A person / background segmenter that `--person-mask NAME` fuses with the parser: its
    architecture (a key of the family's builders), weights, and how to feed it. The frame's long
    side is scaled to `input_size` and the short side padded to it, centred."""

    name: str
    family: str
    architecture: str
    description: str
    labels: LabelSet
    weights: WeightFile
    licence: str
    input_size: int
    input_mean: tuple[float, float, float]  # RGB, 0..1 units
    input_std: tuple[float, float, float]


_HUMANSEG_REPO = "https://github.com/thuyngch/Human-Segmentation-PyTorch"
_DRIVE = "https://drive.google.com/file/d/{}/view?usp=sharing"


def _humanseg_spec(architecture: str, title: str, drive_id: str | None, miou: str | None) -> SegmenterSpec:
    name = f"humanseg-{architecture}"
    filename = f"{name}.pth"
    if drive_id is None:
        manual = (f"No trained {title} was released ({_HUMANSEG_REPO}, README 'Benchmark' lists none); train one "
                  f"with that repository (config/config_PSPNet.json) and rename its model_best.pth to {filename}.")
    else:
        manual = (f"Download the {title} checkpoint from Google Drive ({_DRIVE.format(drive_id)}), linked from "
                  f"{_HUMANSEG_REPO} (README, 'Benchmark'), and rename it to {filename}.")
    return SegmenterSpec(
        name=name,
        family="humanseg",
        architecture=architecture,
        description=f"Human_seg {title}: person / background at 320 x 320"
                    + (f", {miou} mIoU (Supervisely Person + portraits)" if miou else " (no released weights)"),
        labels=PERSON_BACKGROUND,
        weights=WeightFile(filename=filename, urls=(_DRIVE.format(drive_id),) if drive_id else (),
                           sha256=None, size_bytes=None, manual=manual),
        licence="MIT",
        input_size=320,
        input_mean=(0.485, 0.456, 0.406),
        input_std=(0.229, 0.224, 0.225),
    )


SEGMENTER_SPECS: dict[str, SegmenterSpec] = {spec.name: spec for spec in (
    _humanseg_spec("unet-mobilenetv2", "UNet-MobileNetV2", "17GZLCi_FHhWo4E4wPobbLAQdBZrlqVnF", "91.37"),
    _humanseg_spec("unet-resnet18", "UNet-ResNet18", "14QxasSCcL_ij7NHR7Fshx5fi5Sc9MleD", "90.09"),
    _humanseg_spec("deeplab3plus-resnet18", "DeepLabV3+-ResNet18", "1WME_m8CCDupM6tLX6yPt-iA6gpmwQ7Sc", "91.21"),
    _humanseg_spec("bisenet-resnet18", "BiSeNet-ResNet18", "1Lm6O2-_lnQEjMM5lQRcIAbtA9YQUGQuy", "87.02"),
    _humanseg_spec("pspnet-resnet18", "PSPNet-ResNet18", None, None),
    _humanseg_spec("icnet-resnet18", "ICNet-ResNet18", "1Rg8KSU89oQoWW37gjipFSsg2w_X_lefQ", "86.27"),
)}


def weight_files() -> dict[str, tuple[str, WeightFile]]:
    """Every named weights file the cache knows, parsers first: name -> (licence, file)."""
    files = {name: (spec.licence, spec.weights) for name, spec in MODEL_SPECS.items()}
    for specs in (NETWORK_SPECS, SEGMENTER_SPECS):
        files.update({name: (spec.licence, spec.weights) for name, spec in specs.items()})
    return files


class UnknownModelError(ValueError):
    pass


def _lookup(specs: dict, name: str, kind: str):
    try:
        return specs[name]
    except KeyError:
        raise UnknownModelError(f"unknown {kind} '{name}'; known {kind}s: {', '.join(sorted(specs))}") from None


def get_network_spec(name: str) -> NetworkSpec:
    return _lookup(NETWORK_SPECS, name, "network")


def get_spec(name: str) -> ModelSpec:
    return _lookup(MODEL_SPECS, name, "model")


def get_segmenter_spec(name: str) -> SegmenterSpec:
    return _lookup(SEGMENTER_SPECS, name, "person segmenter")

