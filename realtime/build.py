"""Builds what a PipelineConfig describes: the parser, the result stages in the one order they
must run (pose keypoints and a sharper person mask from second models -> person tracking ->
temporal smoothing, whose per-person keypoint filters are keyed by the tracker's IDs), the
analysers, and the Pipeline that runs them."""
from __future__ import annotations

from dataclasses import dataclass

from realtime.analysis.fitness import FitnessAnalyser
from realtime.analysis.tracking import PersonTracker
from realtime.config import PipelineConfig
from realtime.models import Parser, load_parser
from realtime.models.blazepose import BlazePoseStage
from realtime.models.selfie_mask import SelfieMaskStage
from realtime.pipeline import Pipeline
from realtime.render import FrameRenderer
from realtime.smoothing import TemporalSmoother
from realtime.stages import Analyser, ResultStage


@dataclass
class Stages:
    """The steps after the parser: `result` (in order) and `analysers`; `smoother` is the last
    result stage, kept at hand so its strength can change while it runs (0 passes results
    through); `pose_source` names what gives the keypoints ("parser" or a pose stage's name)."""

    result: list[ResultStage]
    analysers: list[Analyser]
    smoother: TemporalSmoother
    pose_source: str = "parser"


def build_parser(config: PipelineConfig) -> Parser:
    return load_parser(config.model, device=config.device, weights=config.weights,
                       internal_size=config.internal_size, max_people=config.max_people, backend=config.backend)


def pose_stage_wanted(config: PipelineConfig) -> bool:
    """BlazePose gives the keypoints when asked for by name ("blazepose-torch": the PyTorch
    networks, default install; "blazepose": the mediapipe wheel, kept as a test reference), or
    with "auto" whenever an exercise is counted (then the PyTorch BlazePose); otherwise the
    parser's keypoints are used ("parser", or "auto" without an exercise)."""
    return config.pose in ("blazepose", "blazepose-torch") or (config.pose == "auto" and config.exercise is not None)


def pose_stages(config: PipelineConfig) -> list[ResultStage]:
    if not pose_stage_wanted(config):
        return []
    if config.pose == "blazepose":
        return [BlazePoseStage()]
    from realtime.models.blazepose_torch import BlazePoseTorchStage

    return [BlazePoseTorchStage(max_people=config.max_people, device=config.device, backend=config.backend)]


def person_mask_stages(config: PipelineConfig) -> list[ResultStage]:
    """The selfie segmenter's fused person mask (PyTorch, the default install) with "selfie" or
    "auto"; none with "parser" (the parser's own mask)."""
    return ([SelfieMaskStage(device=config.device, backend=config.backend)]
            if config.person_mask in ("selfie", "auto") else [])


def build_analysers(config: PipelineConfig) -> list[Analyser]:
    return [FitnessAnalyser(config.exercise, angles=config.angles)] if config.exercise is not None else []


def build_stages(config: PipelineConfig) -> Stages:
    """Fresh stages for one run of `config` (a stage keeps per-source memory: never share one)."""
    smoother = TemporalSmoother(config.smoothing)
    pose = pose_stages(config)
    result = [*pose, *person_mask_stages(config), PersonTracker(single_person=config.max_people == 1), smoother]
    return Stages(result=result, analysers=build_analysers(config), smoother=smoother,
                  pose_source=pose[0].name if pose else "parser")


def build_pipeline(config: PipelineConfig, stages: Stages | None = None, *,
                   renderer: FrameRenderer | None = None) -> Pipeline:
    """The Pipeline of `config` running `stages` (default: build_stages(config)); it owns and
    closes them."""
    stages = stages or build_stages(config)
    return Pipeline(config, stages=stages.result, analysers=stages.analysers, renderer=renderer)
