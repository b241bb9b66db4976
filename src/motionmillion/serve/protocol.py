"""What goes over the wire: the request and response bodies of the HTTP API and the one error body.

The pydantic models document the API (OpenAPI at /docs) and validate requests; responses with joints are
encoded by :func:`encode_entry` rather than through a model (see there).
"""

from __future__ import annotations

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

SEED_RANGE = 2**31  # seeds a client may send; a random one is drawn from the lower half


class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # true is not 1, NaN is no number
    prompt: str
    seconds: float = Field(gt=0)


class GenerateBody(BaseModel):
    """A generation request: a ``prompt``, or a timeline of ``segments``; everything else is optional."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # true is not 1, NaN is no number
    prompt: str | None = Field(None, description="what the person does, in English")
    segments: list[Segment] | None = Field(
        None, description="instead of prompt: a timeline of prompts with durations, played one after another")
    seconds: float | None = Field(None, gt=0, description="duration; null = the model ends the motion itself")
    seed: int | None = Field(None, ge=0, lt=SEED_RANGE, description="null = random; sample (or segment) j uses seed + j")
    num_samples: int = Field(1, ge=1, description="motions for this prompt")
    guidance: float | None = Field(None, ge=0, description="classifier-free guidance; null = the model's default")
    temperature: float = Field(1.0, ge=0, description="0 = greedy")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(0.95, gt=0, le=1)
    fix_feet: bool = Field(False, description="remove foot sliding after generation")
    rewrite: bool = Field(False, description="rewrite the prompt into the training captions' wording first "
                          "(and estimate the duration when seconds is null)")

    @model_validator(mode="after")
    def _prompt_or_segments(self) -> GenerateBody:
        if (self.prompt is None) == (self.segments is None):
            raise ValueError("give either prompt or segments")
        if self.segments is not None and (self.seconds is not None or self.num_samples != 1):
            raise ValueError("with segments, durations go in the segments and num_samples is 1")
        return self

    @property
    def options(self) -> dict:
        return {"guidance": self.guidance, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}


class MotionFiles(BaseModel):
    bvh: str
    npy: str
    mp4: str
    json_: str = Field(alias="json")
    glb: str | None = None
    fbx: str | None = Field(None, description="only where the server has Blender to write FBX")


class MotionOut(BaseModel):
    id: str
    prompt: str
    seed: int
    fps: float
    frames: int
    joints: list[list[list[float]]] = Field(description="(frames, 22, 3) metres, Y up, SMPL joint order")
    files: MotionFiles
    segments: list[dict] | None = Field(None, description="a timeline's segments: prompt, seed, frame range")
    coverage: float | None = Field(None, description="0-1: how close the prompt is to what the model was trained on")
    understood_as: str | None = Field(None, description="what the prompt was understood as (the rewrite, with rewrite)")
    warning: str | None = Field(None, description="when the model may get the prompt wrong: it knows no movement "
                                "like it, or its text is not English (emoji, other scripts)")


class GenerateResponse(BaseModel):
    motions: list[MotionOut]


class ErrorBody(BaseModel):
    """Every error, whatever its status: ``{"error": "...", "status": N}``, never a traceback."""

    error: str
    status: int


def error_body(message: str, status: int) -> dict:
    return ErrorBody(error=message, status=status).model_dump()


def encode_entry(entry: dict, joints: np.ndarray) -> bytes:
    """One motion's JSON, joints rounded to the millimetre (float64 rounding keeps the text short).
    orjson writes the array directly: the standard library takes ~50x longer for ~9,000 floats."""
    rounded = np.round(np.asarray(joints, dtype=np.float64), 3)
    return orjson.dumps({**entry, "joints": rounded}, option=orjson.OPT_SERIALIZE_NUMPY)
