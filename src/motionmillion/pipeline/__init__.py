"""The public face: ``MotionPipeline.from_pretrained(...)(prompt) -> [Motion]``, and the only orchestrator.

    loading.py        pipeline folders: the bundled one, required files, load, save, build (export-pipeline)
    requests.py       what may be asked: GenerationRequest, ModelLimits, Plan, checks, timeline spellings
    understanding.py  what a prompt was understood as: coverage, rewriting, the caption bank of a dataset
    core.py           MotionPipeline: plan/run and the stages (check -> understand -> encode text -> sample
                      -> decode -> make consistent -> motions)
    timeline.py       timelines, continuation, streaming and smooth seams
    control.py        keyframes, root paths, in-betweening and edits (carried out; checked in requests.py)

The command line and the server build a :class:`Plan` (``make_plan`` checks it before any model loads) and
call ``pipe.run(plan)``; they never rebuild the flow.
"""

from motionmillion.pipeline.core import MotionPipeline
from motionmillion.pipeline.loading import PipelineError, build_pipeline_folder, default_model_path
from motionmillion.pipeline.requests import (
    CONTEXT_SECONDS,
    CONTINUE_SECONDS,
    MAX_FRAMES,
    MAX_TIMELINE_SECONDS,
    MIN_SECONDS,
    TIMELINE_OPTIONS,
    GenerationRequest,
    Keyframe,
    ModelLimits,
    Plan,
    PromptError,
    TimelineError,
    make_plan,
    read_timeline,
)
from motionmillion.pipeline.timeline import MotionChunk

__all__ = [
    "CONTEXT_SECONDS", "CONTINUE_SECONDS", "MAX_FRAMES", "MAX_TIMELINE_SECONDS", "MIN_SECONDS", "TIMELINE_OPTIONS",
    "GenerationRequest", "Keyframe", "ModelLimits", "MotionChunk", "MotionPipeline", "PipelineError", "Plan", "PromptError",
    "TimelineError", "build_pipeline_folder", "default_model_path", "make_plan", "read_timeline",
]  # fmt: skip
