"""JSON + Markdown reports with figures (metric table, sample frames, length distribution)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motionmillion.motion.representation import decode_joints
from motionmillion.motion.skeleton import FPS, KINEMATIC_CHAINS

# Which direction is better, for the table's header notes.
METRIC_NOTES = {
    "fid": "lower is better",
    "r_precision_top1": "higher", "r_precision_top2": "higher", "r_precision_top3": "higher",
    "mm_dist": "lower", "diversity": "close to real", "multimodality": "higher",
    "foot_skating": "m/s, lower", "skating_ratio": "lower", "ground_penetration": "m, lower",
    "floating": "m, lower", "jitter": "m/s^3, close to real", "failure_rate": "lower",
    "mean_seconds": "s", "length_abs_error_s": "s, lower", "text_motion_cosine": "higher",
    "content_accuracy_text_candidates": "higher", "content_top3_text_candidates": "higher",
    "content_accuracy_motion_prototypes": "higher",
}


def _fmt(cell: dict | None) -> str:
    if not cell:
        return "-"
    return f"{cell['mean']:.4g} ± {cell['ci95']:.2g}" if len(cell.get("values", [])) > 1 else f"{cell['mean']:.4g}"


def metric_table(results: dict[str, dict]) -> str:
    columns = list(results)
    keys = [k for k in METRIC_NOTES if any(k in results[c] for c in columns)]
    keys += sorted({k for c in columns for k in results[c]} - set(keys))
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for k in keys:
        note = f" ({METRIC_NOTES[k]})" if k in METRIC_NOTES else ""
        lines.append(f"| {k}{note} | " + " | ".join(_fmt(results[c].get(k)) for c in columns) + " |")
    return "\n".join(lines)


def draw_sample_grid(samples: list[dict], path: Path, frames_per_sample: int = 4) -> None:
    """One row per sample, ``frames_per_sample`` evenly spaced skeleton frames (front view, x-y plane)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from motionmillion.utils.io import atomic_path

    rows = len(samples)
    fig, axes = plt.subplots(rows, frames_per_sample, figsize=(2.2 * frames_per_sample, 2.6 * rows), squeeze=False)
    for r, sample in enumerate(samples):
        joints = decode_joints(sample["features"])
        picks = np.linspace(0, len(joints) - 1, frames_per_sample).round().astype(int)
        centre = joints[:, 0, [0, 2]].mean(0)
        for c, t in enumerate(picks):
            ax = axes[r, c]
            for chain in KINEMATIC_CHAINS:
                pts = joints[t, list(chain)]
                ax.plot(pts[:, 0] - centre[0], pts[:, 1], "-o", ms=1.5, lw=1.5)
            ax.axhline(0.0, color="0.6", lw=0.8)
            ax.set_xlim(-1.2, 1.2)
            ax.set_ylim(-0.1, 2.1)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{t / FPS:.1f}s", fontsize=7)
        caption = sample["caption"]
        axes[r, 0].set_ylabel(caption[:38] + ("…" if len(caption) > 38 else ""), fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def draw_length_histogram(lengths: dict[str, list[int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from motionmillion.utils.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 3.2))
    all_values = [v for vals in lengths.values() for v in vals]
    bins = np.linspace(0, max(all_values + [1]) / FPS, 30)
    for name, vals in lengths.items():
        if vals:
            ax.hist(np.asarray(vals) / FPS, bins=bins, alpha=0.5, density=True, label=f"{name} (n={len(vals)})")
    ax.set_xlabel("seconds")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def write_report(result: dict, json_path: str | Path, title: str, markdown_path: str | Path | None = None) -> dict[str, Path]:
    """Write the JSON (without in-memory samples), the Markdown report and its figures beside it."""
    from motionmillion.utils.io import atomic_write_json, atomic_write_text

    json_path = Path(json_path)
    markdown_path = Path(markdown_path) if markdown_path else json_path.with_suffix(".md")
    samples = result.get("_samples") or []
    clean = {k: v for k, v in result.items() if not k.startswith("_")}
    atomic_write_json(json_path, clean)
    written = {"json": json_path, "markdown": markdown_path}
    stem = markdown_path.stem
    lines = [f"# {title}", ""]
    proto = clean.get("protocol", {})
    lines += ["## Protocol", ""] + [f"- **{k}**: {v}" for k, v in proto.items()] + [""]
    if clean.get("sanity"):
        lines += ["## Sanity (real vs real)", ""] + [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
                                                     for k, v in clean["sanity"].items()] + [""]
    lines += ["## Metrics (mean ± 95% CI over repeats)", "", metric_table(clean.get("results", {})), ""]
    fails = clean.get("failures")
    if fails:
        lines += ["## Failures", ""]
        for mode, reps in fails.items():
            total = sum(r["count"] for r in reps)
            examples = [e for r in reps for e in r["examples"]][:3]
            lines.append(f"- {mode}: {total} failed generation(s) over {len(reps)} repeat(s)" + (f"; e.g. {examples}" if examples else ""))
        lines.append("")
    if samples:
        grid = markdown_path.with_name(f"{stem}_samples.png")
        draw_sample_grid(samples, grid)
        written["samples"] = grid
        lines += ["## Samples (generated, first repeat)", "", f"![samples]({grid.name})", ""]
    lengths = dict(clean.get("generated_lengths", {}))
    if clean.get("real_lengths"):
        lengths = {"real": clean["real_lengths"], **lengths}
    if any(lengths.values()):
        hist = markdown_path.with_name(f"{stem}_lengths.png")
        draw_length_histogram(lengths, hist)
        written["lengths"] = hist
        lines += ["## Length distribution", "", f"![lengths]({hist.name})", ""]
    atomic_write_text(markdown_path, "\n".join(lines))
    return written
