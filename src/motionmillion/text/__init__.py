"""Text: encoders behind one interface (per-token features + mask) and the text-feature cache.

Shared by the generator, the evaluator and the pipeline; knows nothing about motion.
"""

from motionmillion.text.encoders import (
    DEFAULT_TEXT_ENCODER,
    TextEncoder,
    TextEncoderOutput,
    bundled_minilm_path,
    resolve_text_encoder_path,
    sentence_embedding,
)
from motionmillion.text.feature_cache import CACHE_FEATURES, CACHE_INDEX, CACHE_META, TextFeatureCache

__all__ = [
    "CACHE_FEATURES", "CACHE_INDEX", "CACHE_META", "DEFAULT_TEXT_ENCODER", "TextEncoder", "TextEncoderOutput",
    "TextFeatureCache", "bundled_minilm_path", "resolve_text_encoder_path", "sentence_embedding",
]  # fmt: skip
