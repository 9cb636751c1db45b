"""The ``report`` step: a Markdown table and a plot of quality against speed for every built variant.

Reads the JSON that ``bertserve models eval`` writes (one file per base model, each measured in one run)
and writes ``VARIANTS.md`` and ``variants.png``. Speed is shown as the ratio to the float32 base of the
same run, since absolute figures on shared machines move from run to run and ratios do not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

QUALITY_KEYS = {
    "embed": ("sts_spearman", "STS-B test Spearman"),
    "classify": ("sentiment_accuracy", "sentiment accuracy"),
}
_COLUMNS = (
    "model",
    "recipe",
    "runtime/dtype",
    "quality",
    "drop",
    "cos min",
    "cos mean",
    "b1 /s",
    "b32 /s",
    "x b1",
    "x b32",
    "p50 ms",
    "size MB",
    "params M",
)


def frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (speed-up, quality) points no other point beats on both, fastest first: the
    quality-speed frontier (what is worth serving)."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    best = float("-inf")
    kept = []
    for index in order:
        if points[index][1] > best:
            kept.append(index)
            best = points[index][1]
    return kept


def load_results(files: list[Path]) -> list[dict[str, dict[str, Any]]]:
    """The eval results, one dict (name -> figures) per file."""
    return [json.loads(file.read_text(encoding="utf-8")) for file in files]


def _row(name: str, figures: dict[str, Any], base: dict[str, Any]) -> list[str]:
    key, _ = QUALITY_KEYS[figures["task"]]
    drop = base[key] - figures[key]
    return [
        name,
        figures["recipe"],
        f"{figures['runtime']}/{figures['dtype']}",
        f"{figures[key]:.4f}",
        f"{drop:+.4f}" if name != "base" else "",
        f"{figures['cosine_min']:.4f}",
        f"{figures['cosine_mean']:.4f}",
        f"{figures['throughput_b1']:.0f}",
        f"{figures['throughput_b32']:.0f}",
        f"{figures['speedup_b1']:.2f}",
        f"{figures['speedup_b32']:.2f}",
        f"{figures['p50_ms']:.2f}",
        f"{figures['size_bytes'] / 1e6:.1f}",
        f"{figures['parameters'] / 1e6:.2f}",
    ]


def markdown(results: list[dict[str, dict[str, Any]]], command: str) -> str:
    """The Markdown report: one table per base model."""
    lines = [
        "# Model variants: quality against speed",
        "",
        f"Produced by `{command}`. Each table is one run: the base and its variants loaded side by side,",
        "throughput on length-sorted real STS-B sentences at batch 1 and 32 (best of the run's rounds),",
        "`x` = ratio to the base of the same run; `drop` = base quality minus the variant's; cosine = to the",
        "base's outputs on the STS-B test sentences. Size = weight file on disk. **Bold**: on the",
        "quality-speed frontier (no other row is both faster at batch 32 and better).",
        "",
    ]
    for table in results:
        base = table["base"]
        _, label = QUALITY_KEYS[base["task"]]
        lines += [f"## {_base_name(base)} ({base['task']}; quality = {label})", ""]
        lines.append("| " + " | ".join(_COLUMNS) + " |")
        lines.append("|" + " --- |" * len(_COLUMNS))
        on_edge = set(frontier([(f["speedup_b32"], f[QUALITY_KEYS[f["task"]][0]]) for f in table.values()]))
        for index, (name, figures) in enumerate(table.items()):
            label = f"**{name}**" if index in on_edge else name
            lines.append("| " + " | ".join([label, *_row(name, figures, base)[1:]]) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict[str, dict[str, Any]]], target: Path) -> None:
    """Quality against batch-32 speed-up, one panel per base model."""
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for axis, table in zip(axes[0], results, strict=True):
        key, label = QUALITY_KEYS[table["base"]["task"]]
        points = [(figures["speedup_b32"], figures[key]) for figures in table.values()]
        edge = sorted(points[i] for i in frontier(points))
        axis.step([p[0] for p in edge], [p[1] for p in edge], where="post", color="grey", alpha=0.6)
        kinds = sorted({f"{f['runtime']}/{f['dtype']}" for f in table.values()})
        colours = {kind: f"C{i}" for i, kind in enumerate(kinds)}
        for kind in kinds:  # one legend entry per runtime/dtype
            axis.scatter([], [], s=40, color=colours[kind], label=kind)
        for name, figures in table.items():
            kind = f"{figures['runtime']}/{figures['dtype']}"
            axis.scatter(figures["speedup_b32"], figures[key], s=40, color=colours[kind])
            axis.annotate(
                name,
                (figures["speedup_b32"], figures[key]),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        axis.set_xlabel("throughput vs float32 base (batch 32, same run)")
        axis.set_ylabel(label)
        axis.set_title(_base_name(table["base"]))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, title="grey: frontier", title_fontsize=7)
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)


def write_report(result_files: list[Path], out_dir: Path, command: str) -> tuple[Path, Path]:
    """Write ``VARIANTS.md`` and ``variants.png`` into ``out_dir``."""
    results = load_results(result_files)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "VARIANTS.md"
    table.write_text(markdown(results, command), encoding="utf-8")
    image = out_dir / "variants.png"
    plot(results, image)
    return table, image


def _base_name(base: dict[str, Any]) -> str:
    """The base model as given to ``eval`` (older results: its folder's name)."""
    return str(base.get("source") or Path(base["path"]).name)
