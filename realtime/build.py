"""Builds what a PipelineConfig describes: the parser, the result stages in the one order they
must run (people from an instance model -> pose keypoints and a sharper person mask from second
models -> person tracking -> temporal smoothing, whose per-person keypoint filters are keyed by
the tracker's IDs -> top-down parts, which relabel the smoothed people's pixels), the
analysers, and the Pipeline that runs them."""
from __future__ import annotations

from dataclasses import dataclass

from realtime.analysis.fitness import FitnessAnalyser
from realtime.analysis.tracking import PersonTracker
from realtime.config import PipelineConfig
from realtime.models import Parser, load_parser
from realtime.models.blazepose import BlazePoseStage
from realtime.models.bodypix import BodyPixParser
from realtime.models.instance_people import InstancePeopleStage
from realtime.models.person_mask import PersonMaskStage, person_segmenter
from realtime.models.registry import get_network_spec, get_segmenter_spec, get_spec
from realtime.pipeline import Pipeline
from realtime.render import FrameRenderer
from realtime.smoothing import TemporalSmoother
from realtime.stages import Analyser, ResultStage
from realtime.weights import WeightFile, cached_path, missing_error


@dataclass
class Stages:
    """The steps after the parser: `result` (in order) and `analysers`; `smoother` is one of the
    result stages, kept at hand so its strength can change while it runs (0 passes results
    through); `pose_source` names what gives the keypoints ("parser" or a pose stage's name)."""

    result: list[ResultStage]
    analysers: list[Analyser]
    smoother: TemporalSmoother
    pose_source: str = "parser"


def build_parser(config: PipelineConfig) -> Parser:
    return load_parser(config.model, device=config.device, weights=config.weights,
                       internal_size=config.internal_size, max_people=config.max_people, backend=config.backend,
                       dtype=config.dtype)


def pose_stage_wanted(config: PipelineConfig) -> bool:
    """Whether a pose stage gives the keypoints: BlazePose ("auto" and "blazepose-torch": the
    PyTorch networks, default install; "blazepose": the mediapipe wheel, kept as a test
    reference); with "parser" the parser's own keypoints are used."""
    return config.pose != "parser"


def person_mask_source(config: PipelineConfig) -> str:
    """What makes the person mask, "auto" resolved: "pose" (BlazePose's per-person segmentation
    and the selfie segmenter, refined) when the PyTorch BlazePose runs, else "selfie" (the
    parser's mask moved towards the selfie segmenter's)."""
    if config.person_mask != "auto":
        return config.person_mask
    return "pose" if config.pytorch_pose else "selfie"


def model_weights(config: PipelineConfig) -> list[tuple[str, str, WeightFile]]:
    """The weights files `config`'s models read from the weights cache, each as (role, model name,
    file): the parser (unless --weights names a file), the people model, BlazePose's two networks
    in PyTorch, the person segmenter. UnknownModelError (a ValueError) for an unknown name."""
    files = [] if config.weights else [("model", config.model, get_spec(config.model).weights)]
    if people_stage_wanted(config) and not config.people_weights:
        files.append(("people model", config.people, get_spec(config.people).weights))
    if pose_stage_wanted(config) and config.pytorch_pose:
        files += [("pose model", name, get_network_spec(name).weights) for name in ("blazepose-detector",
                                                                                    "blazepose-full")]
    source = person_mask_source(config)
    if source in ("pose", "selfie"):
        files.append(("person mask", "selfie", get_network_spec("selfie").weights))
    elif source != "parser":
        files.append(("person mask", source, get_segmenter_spec(source).weights))
    return files


def missing_weights(config: PipelineConfig) -> list[tuple[str, str, WeightFile]]:
    """The model_weights of `config` not in the weights cache, each once."""
    files = {file.filename: (role, name, file) for role, name, file in model_weights(config)}
    return [entry for entry in files.values() if not cached_path(entry[2]).is_file()]


def require_weights(config: PipelineConfig) -> None:
    """WeightsError naming, in one line, every weights file `config` runs with that is missing from
    the weights cache (missing_weights), so that one fetch round gets them all."""
    if missing := missing_weights(config):
        raise missing_error([(name, file) for _, name, file in missing])


def pose_stages(config: PipelineConfig) -> list[ResultStage]:
    if not pose_stage_wanted(config):
        return []
    if config.pose == "blazepose":
        return [BlazePoseStage()]
    from realtime.models.blazepose_torch import BlazePoseTorchStage

    return [BlazePoseTorchStage(max_people=config.max_people, device=config.device, backend=config.backend,
                                dtype=config.dtype,
                                segmentation=person_mask_source(config) == "pose")]


def people_stage_wanted(config: PipelineConfig) -> bool:
    """Whether an instance model splits the parts among people (`config.people`): not when the
    people are the parser's own (also when the parser is that model)."""
    return config.people not in ("parser", config.model)


def people_stages(config: PipelineConfig) -> list[ResultStage]:
    """The instance model that splits the parts among people, when people_stage_wanted."""
    if not people_stage_wanted(config):
        return []
    parser = load_parser(config.people, device=config.device, weights=config.people_weights,
                         internal_size=config.people_size, max_people=config.max_people, dtype=config.dtype)
    return [InstancePeopleStage(parser)]


def person_mask_stages(config: PipelineConfig) -> list[ResultStage]:
    """The person-mask stage of `person_mask_source(config)`: "pose" refines BlazePose's
    segmentation with the selfie segmenter; "selfie" (PyTorch, default install) or a Human_seg
    network moves the parser's mask towards the segmenter's; none with "parser" (the parser's
    own mask)."""
    source = person_mask_source(config)
    if source == "parser":
        return []
    segmenter = "selfie" if source == "pose" else source
    return [PersonMaskStage(person_segmenter(segmenter, config.device, config.backend, config.dtype),
                            name=f"{segmenter}-mask",
                            warn_unfused=config.person_mask not in ("auto", "pose"), refine=source == "pose")]


def parts_stages(config: PipelineConfig) -> list[ResultStage]:
    """Top-down parts with "top-down" (BodyPix models only: a second parser instance of the same
    model, single-person heads); none with "full-frame"."""
    if config.parts != "top-down":
        return []
    from realtime.models.top_down import TopDownPartsStage

    parser = load_parser(config.model, device=config.device, weights=config.weights,
                         internal_size=config.internal_size, max_people=1, backend=config.backend,
                         dtype=config.dtype)
    if not isinstance(parser, BodyPixParser):
        raise ValueError(f"--parts top-down needs a BodyPix model, not {config.model}")
    return [TopDownPartsStage(parser)]


def person_mask_chain(config: PipelineConfig) -> list[ResultStage]:
    """The stages that shape the person mask, for measures on stills and clips: the pose stage
    when the person-mask stage refines its segmentation ("pose"), and the person-mask stage."""
    pose = pose_stages(config) if person_mask_source(config) == "pose" else []
    return [*pose, *person_mask_stages(config)]


def build_analysers(config: PipelineConfig) -> list[Analyser]:
    return [FitnessAnalyser(config.exercise, angles=config.angles)] if config.exercise is not None else []


def build_stages(config: PipelineConfig) -> Stages:
    """Fresh stages for one run of `config` (a stage keeps per-source memory: never share one)."""
    smoother = TemporalSmoother(config.smoothing)
    pose = pose_stages(config)
    result = [*people_stages(config), *pose, *person_mask_stages(config),
              PersonTracker(single_person=config.max_people == 1), smoother, *parts_stages(config)]
    return Stages(result=result, analysers=build_analysers(config), smoother=smoother,
                  pose_source=pose[0].name if pose else "parser")


def checked_stages(config: PipelineConfig) -> Stages:
    """build_stages(config) once every weights file `config` runs with is in the cache; else
    WeightsError naming every missing one, in one line (require_weights), before any is loaded."""
    require_weights(config)
    return build_stages(config)


def build_run(config: PipelineConfig, *, renderer: FrameRenderer | None = None) -> tuple[Stages, Pipeline]:
    """Fresh stages for one run of `config` and the Pipeline running them (build_pipeline), with
    every missing weights file named first (checked_stages)."""
    stages = checked_stages(config)
    return stages, build_pipeline(config, stages, renderer=renderer)


def build_pipeline(config: PipelineConfig, stages: Stages | None = None, *,
                   renderer: FrameRenderer | None = None, parser: Parser | None = None,
                   owns_stages: bool = True) -> Pipeline:
    """The Pipeline of `config` running `stages` (default: checked_stages(config), every missing
    weights file named first); it owns and closes them, except result stages lent with
    `owns_stages=False`. `parser`: one already loaded for `config` (default: loaded here)."""
    if stages is None:
        stages = checked_stages(config)
    return Pipeline(config, stages=stages.result, analysers=stages.analysers, renderer=renderer, parser=parser,
                    owns_stages=owns_stages, pose_source=stages.pose_source)
