"""Import records: one JSON per imported source file (``DATASET/meta/import/<prefix>/<source>.json``,
written by :mod:`importers`), the one source of what each stored clip is (its labels, take group and
stratum) and the mark that a source is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from motionmillion.data import labels
from motionmillion.data.captions import swap_left_right
from motionmillion.data.layout import MotionDataset, iter_stored_names
from motionmillion.data.recipes import SourceJob

META_DIR = Path("meta/import")


def record_path(out: Path, job: SourceJob) -> Path:
    return out / META_DIR / job.prefix / job.record_path_suffix


def load_records(out: str | Path) -> list[dict]:
    folder = Path(out) / META_DIR
    records = []
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        if path.name == "last_run.json":
            continue
        records.append(json.loads(path.read_text()))
    return records


@dataclass(frozen=True)
class ClipLabel:
    """What the import records say about one stored clip (the one source of clip labels)."""

    content: str  # the labelled movement as performed ("walk-turn-left" only when the measured turn says so)
    style: str
    stratum: str  # the source's content/style group, shared by all its takes
    group: str  # the take, kept within one split
    mirrored: bool

    @property
    def recipe(self) -> str:
        """All takes and windows of one content/style (and mirroring): clips that are near-duplicates."""
        return f"{self.stratum}/mirrored" if self.mirrored else self.stratum


def clip_labels(out: str | Path) -> dict[str, ClipLabel]:
    """{clip name: ClipLabel} for every clip (and mirrored clip) of the dataset's import records; clips
    written by other means have none."""
    found: dict[str, ClipLabel] = {}
    for record in load_records(out):
        label = record.get("label", {})
        content = label.get("content") or label.get("category") or ""
        style = label.get("style", "")
        for clip in record["clips"]:
            clip_content = content
            if content.startswith("walk-turn-") and "turn_degrees" in clip:
                clip_content = labels.walk_label(clip["turn_degrees"])
            found[clip["name"]] = ClipLabel(clip_content, style, record["stratum"], record["group"], False)
            found[clip["mirror"]] = ClipLabel(swap_left_right(clip_content), style, record["stratum"],
                                               record["group"], True)  # fmt: skip
    return found


def dataset_clip_table(out: str | Path) -> list[dict]:
    """Every stored clip with its length, group and stratum (from the import records; clips written by
    other means form their own group)."""
    out = Path(out)
    dataset = MotionDataset(out)
    table: dict[str, dict] = {}
    for record in load_records(out):
        for clip in record["clips"]:
            for key in ("name", "mirror"):
                table[clip[key]] = {"name": clip[key], "frames": clip["frames"], "group": record["group"], "stratum": record["stratum"]}
    for name in iter_stored_names(out):
        if name not in table:
            table[name] = {"name": name, "frames": dataset.length(name), "group": name, "stratum": "other"}
    stored = set(iter_stored_names(out))
    return [table[name] for name in sorted(table) if name in stored]
