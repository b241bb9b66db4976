"""MotionMillion: text to 3D human motion (272-dim representation, FSQ tokenizer, LLaMA prefix-LM)."""

__version__ = "0.1.0"

from motionmillion.motion.motion import Motion  # noqa: E402

__all__ = ["Motion", "__version__"]


def __getattr__(name: str):
    # The pipeline pulls in torch and transformers; import it only when asked for.
    if name in ("MotionPipeline", "Keyframe"):
        import motionmillion.pipeline as pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
