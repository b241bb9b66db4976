"""Dataset layout (MotionMillion), labels, import recipes and records, captions, splits, statistics, packed store.

    from motionmillion.data import MotionDataset, PackedMotions
    dataset = MotionDataset("datasets/mm")              # the MotionMillion folder layout
    names = dataset.names("train", kind="tokenizer_96")
    features, captions = dataset.motion(names[0]), dataset.texts(names[0])
    packed = PackedMotions("datasets/mm")               # after `motionmillion data pack datasets/mm`
    window = packed.window(packed.index_of(names[0]), 0, 96)

Numpy only at import time.
"""

from motionmillion.data.importers import finalize_dataset, import_bvh
from motionmillion.data.layout import (
    DatasetLayoutError,
    MotionDataset,
    mirror_name,
    write_clip,
    write_mean_std,
    write_split,
)
from motionmillion.data.packed import PackedMotions, UnpackedMotions, open_motions, pack_dataset

__all__ = [
    "DatasetLayoutError", "MotionDataset", "PackedMotions", "UnpackedMotions", "finalize_dataset", "import_bvh",
    "mirror_name", "open_motions", "pack_dataset", "write_clip", "write_mean_std", "write_split",
]  # fmt: skip
