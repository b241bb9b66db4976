"""Timeline specifications for ``MotionPipeline.compose`` and ``motionmillion generate --timeline``.

Two spellings of the same list of segments:

- short form: ``"a person walks forward:3; a person waves the right hand:2; a person bows:2"``
  (``PROMPT:SECONDS`` separated by ``;``; the last ``:`` of a segment starts its duration);
- a JSON file: ``[{"prompt": "a person walks forward", "seconds": 3}, ...]`` or ``{"segments": [...]}``,
  where a segment may also set "seed", "guidance", "temperature", "top_k" and "top_p".

Only the syntax is checked here; ``MotionPipeline.timeline`` checks the values (and names the segment).
"""

from __future__ import annotations

import json
from pathlib import Path


class TimelineError(ValueError):
    """A timeline that cannot be read; the message names the file or the segment."""


def read_timeline(spec: str | Path) -> list[dict]:
    """Segments from a JSON file (a path ending in .json, or any existing file) or the short form."""
    text = str(spec)
    if not text.strip():
        raise TimelineError("the timeline is empty: give a JSON file or PROMPT:SECONDS; PROMPT:SECONDS ...")
    path = Path(text)
    if text.lower().endswith(".json") or (";" not in text and ":" not in text) or _is_file(path):
        return _read_json(path)
    return parse_short_timeline(text)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a short form too long to be a file name
        return False


def parse_short_timeline(text: str) -> list[dict]:
    """``"prompt:seconds; prompt:seconds"`` -> [{"prompt": ..., "seconds": ...}, ...]."""
    parts = [part.strip() for part in text.split(";")]
    if parts and not parts[-1]:
        parts.pop()  # a trailing ";"
    if not parts or not any(parts):
        raise TimelineError("the timeline is empty: write PROMPT:SECONDS; PROMPT:SECONDS ...")
    segments = []
    for i, part in enumerate(parts, start=1):
        prompt, colon, seconds = part.rpartition(":")
        if not colon:
            raise TimelineError(f"timeline segment {i} ({part[:40]!r}): no duration; write PROMPT:SECONDS")
        try:
            value = float(seconds)
        except ValueError:
            raise TimelineError(f"timeline segment {i} ({part[:40]!r}): {seconds.strip()!r} is not a number of seconds") from None
        segments.append({"prompt": prompt.strip(), "seconds": value})
    return segments


def _read_json(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TimelineError(f"{path}: no such timeline file (or write the short form PROMPT:SECONDS; ...)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise TimelineError(f"{path}: cannot read the timeline ({err})") from None
    except json.JSONDecodeError as err:
        raise TimelineError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict):
        data = data.get("segments")
    if not isinstance(data, list):
        raise TimelineError(f"{path}: expected a list of segments or {{\"segments\": [...]}}")
    for i, segment in enumerate(data, start=1):
        if not isinstance(segment, dict):
            raise TimelineError(f"{path}: segment {i} is not an object with prompt and seconds")
    return data
