"""The demo's PNG figures (matplotlib, Agg backend), each written atomically."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.mixture import two_d_mixture
from ..guidance.engine import Guidance
from ..schedules.noise import LinearBetaSchedule
from .io import atomic_write
from .leaderboard import front
from .standin import MixtureSampler


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def tile(samples: Tensor, labels: Tensor, per_class: int, pad: int = 1) -> Tensor:
    """One image: a row per class (ascending), the first ``per_class`` samples of it ``(B, 1, H, W)``."""
    classes = sorted(set(labels.tolist()))
    h, w = samples.shape[-2:]
    canvas = torch.full((len(classes) * (h + pad) - pad, per_class * (w + pad) - pad), float("nan"))
    for i, c in enumerate(classes):
        for j, img in enumerate(samples[labels == c][:per_class]):
            canvas[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = img[0].clamp(-1, 1)
    return canvas


def sample_grid(samples: Tensor, labels: Tensor, path: Path, *, title: str, per_class: int = 8) -> Path:
    """A grid of samples, a row per requested class, grey levels over [−1, 1]."""
    plt = _pyplot()
    canvas = tile(samples, labels, per_class).numpy()
    fig, ax = plt.subplots(figsize=(0.3 * canvas.shape[1] / 9 * 3, 0.3 * canvas.shape[0] / 9 * 3))
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    ax.imshow(canvas, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return _save(fig, path)


MARKERS: dict[str, str] = {
    "rescale": "s",
    "dynamic_threshold": "D",
    "interval": "v",
    "decay": "^",
    "apg": "P",
    "cfg_zero_star": "X",
    "tcfg": "<",
    "mambo_g": ">",
    "fdg": "h",
    "adaptive": "*",
    "beta": "d",
    "cfgpp": "p",
    "rectified_cfgpp": "8",
}


def _panel(ax, rows: Sequence[Mapping[str, Any]], metric: str) -> None:
    plain = sorted((r for r in rows if r["method"] == "cfg"), key=lambda r: r["scale"])
    ax.plot([r["recall"] for r in plain], [r[metric] for r in plain], "o-", color="k", label="CFG")
    if all("ci" in r for r in plain):  # 95 % bootstrap intervals of the CFG curve

        def err(m: str) -> list[list[float]]:
            return [[max(r[m] - r["ci"][m][0], 0.0) for r in plain], [max(r["ci"][m][1] - r[m], 0.0) for r in plain]]

        xerr, yerr = err("recall"), err(metric)
        ax.errorbar([r["recall"] for r in plain], [r[metric] for r in plain], xerr=xerr, yerr=yerr, fmt="none",
                    ecolor="0.5", elinewidth=0.7, capsize=0)  # fmt: skip
    best = sorted(front(rows, metric, "recall"), key=lambda r: r["recall"])
    ax.plot([r["recall"] for r in best], [r[metric] for r in best], "--", color="C3", lw=0.8, label="Pareto front")
    for r in plain:
        ax.annotate(f"{r['scale']:g}", (r["recall"], r[metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lowest: dict[str, float] = {}
    for r in rows:
        if r["method"] != "cfg":
            lowest[r["method"]] = min(lowest.get(r["method"], r["scale"]), r["scale"])
    for r in rows:
        if r["method"] == "cfg":
            continue
        color = f"C{list(MARKERS).index(r['method']) % 10 if r['method'] in MARKERS else 9}"
        filled = r["scale"] == lowest[r["method"]]
        ax.scatter(r["recall"], r[metric], marker=MARKERS.get(r["method"], "o"), edgecolors=color,
                   facecolors=color if filled else "none", label=f"{r['method']} s={r['scale']:g}")  # fmt: skip
    ax.set_xlabel("recall (diversity)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)


def tradeoff(rows: Sequence[Mapping[str, Any]], paradigms: Sequence[str], path: Path) -> Path:
    """Adherence and precision against recall (diversity): plain CFG as a curve over s with its 95 % intervals,
    the other methods as points, and the Pareto front of all rows dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        2, len(paradigms), figsize=(4.0 * len(paradigms), 7.5), squeeze=False, layout="constrained"
    )
    for col, paradigm in enumerate(paradigms):
        mine = [r for r in rows if r["paradigm"] == paradigm]
        for row, metric in enumerate(("adherence", "precision")):
            _panel(axes[row][col], mine, metric)
            axes[row][col].set_title(f"{paradigm}: {metric} vs recall", fontsize=9)
    legend: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=min(len(legend), 5), fontsize=7)
    fig.suptitle("Guidance trade-off: numbers on the CFG curve are scales s; filled markers = lower high scale")
    return _save(fig, path)


def bayes_view(
    path: Path,
    *,
    scales: Sequence[float] = (1.0, 3.0, 8.0, 15.0),
    label: int = 0,
    n: int = 300,
    steps: int = 40,
    seed: int = 0,
) -> Path:
    """Guided DDIM samples of class ``label`` from the exact 2-D mixture over contours of log p(x) + s·log p(y|x)."""
    plt = _pyplot()
    mixture = two_d_mixture(path=LinearBetaSchedule())
    sampler = MixtureSampler(mixture, steps=steps)
    grid = torch.linspace(-5.0, 5.0, 201, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    labels = torch.full((points.shape[0],), label, dtype=torch.long)
    data = mixture.sample(torch.full((n,), mixture.num_classes), generator=torch.Generator().manual_seed(seed))
    fig, axes = plt.subplots(1, len(scales), figsize=(3.3 * len(scales), 3.4), squeeze=False)
    for ax, s in zip(axes[0], scales, strict=True):
        with torch.no_grad():
            density = mixture.guided_log_density(points, labels, s).reshape(gx.shape)
        density = (density - density.max()).clamp_min(-12.0)
        ax.contourf(gx.numpy(), gy.numpy(), density.numpy(), levels=14, cmap="Blues")
        ax.scatter(data[:, 0], data[:, 1], s=2, color="0.6", label="data p(x)")
        gen = torch.Generator().manual_seed(seed)
        x = sampler.sample(torch.full((n,), label), Guidance(scale=s), generator=gen)
        ax.scatter(x[:, 0], x[:, 1], s=3, color="C3", label=f"guided samples, y={label}")
        ax.set_title(f"s = {s:g}", fontsize=9)
        ax.set_xlim(-5, 5)
        ax.set_ylim(-5, 5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle("Bayes view: CFG at scale s over contours of log p(x) + s·log p(y|x) (exact mixture)", fontsize=9)
    return _save(fig, path)
