"""The evaluation report: ``report.md`` with four PNG plots beside it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def write_report(out: Path, metrics: dict, records: list[dict], model_version: str) -> None:
    exact = [r for r in records if r["age"] is not None]
    ranged = [r for r in records if r["age"] is None]
    plots = []
    if exact:
        plots += [_age_scatter(out, exact), _error_by_band(out, metrics)]
    if metrics["by_age_group"]:
        plots.append(_predictions_by_group(out, ranged, metrics))
    if records:
        plots.append(_gender_confusion(out, records))
    if any(v is not None for v in metrics["interval_calibration"].values()):
        plots.append(_calibration(out, metrics))
    level = f"{metrics['interval_level']:.0%}"
    lines = [
        f"# Evaluation of {model_version}",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| images | {metrics['n']} |",
        f"| detection misses | {metrics['detection_misses']} |",
        f"| age MAE, exact ages (years) | {_fmt(metrics['age_mae'])} |",
        f"| age inside its group | {_fmt(metrics['age_in_range'], percent=True)} |",
        f"| distance to the age group (years, 0 inside) | {_fmt(metrics['age_range_distance'])} |",
        f"| age inside the set's stated bound | {_fmt(metrics['age_bound_inside'], percent=True)} |",
        f"| gender accuracy | {_fmt(metrics['gender_accuracy'], percent=True)} |",
        f"| {level} interval coverage | {_fmt(metrics['interval_coverage'], percent=True)} |",
        f"| mean interval width (years) | {_fmt(metrics['interval_mean_width'])} |",
        f"| images per second (whole pipeline) | {_fmt(metrics['images_per_second'])} |",
    ]
    if exact:
        lines += ["", "## Age MAE by band", "", "| band | MAE |", "| --- | --- |"]
        lines += [f"| {band} | {_fmt(value)} |" for band, value in metrics["mae_by_band"].items()]
    if metrics["by_age_group"]:
        lines += [
            "",
            "## By age group",
            "",
            f"| group | n | inside | distance | offset | mean prediction | {level} coverage | gender accuracy |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {group} | {v['n']} | {_fmt(v['in_range'], percent=True)} | {_fmt(v['distance'])} | "
            f"{_fmt(v['offset'])} | {_fmt(v['mean_prediction'])} | {_fmt(v['interval_coverage'], percent=True)} | "
            f"{_fmt(v['gender_accuracy'], percent=True)} |"
            for group, v in metrics["by_age_group"].items()
        ]
    for key, title in (("by_gender", "By gender"), ("by_race", "By race")):
        if key in metrics:
            lines += ["", f"## {title}", "", "| group | n | age error | gender accuracy |", "| --- | --- | --- | --- |"]
            lines += [
                f"| {group} | {v['n']} | {_fmt(v['age_error'])} | {_fmt(v['gender_accuracy'], percent=True)} |"
                for group, v in metrics[key].items()
            ]
    lines += ["", "## Detection misses by age group", "", "| group | photos | missed |", "| --- | --- | --- |"]
    lines += [f"| {g} | {v['n']} | {v['missed']} |" for g, v in sorted(metrics["detection_misses_by_group"].items())]
    lines += ["", "Age error: MAE for exact ages, distance to the group for age groups (0 inside)."]
    lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _fmt(value, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.2f}"


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _age_scatter(out: Path, records) -> str:
    true = np.array([r["age"] for r in records])
    pred = np.array([r["age_pred"] for r in records])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true, pred, s=4, alpha=0.3)
    top = max(true.max(), pred.max()) + 5
    ax.plot([0, top], [0, top], color="black", linewidth=1)
    ax.set(xlabel="true age", ylabel="predicted age", title="Predicted vs true age", xlim=(0, top), ylim=(0, top))
    return _save(fig, out, "age_scatter.png")


def _error_by_band(out: Path, metrics) -> str:
    bands = metrics["mae_by_band"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(list(bands), [v or 0 for v in bands.values()])
    ax.set(xlabel="true age band", ylabel="MAE (years)", title="Age error by band")
    return _save(fig, out, "error_by_band.png")


def _predictions_by_group(out: Path, records, metrics) -> str:
    groups = list(metrics["by_age_group"])
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, group in enumerate(groups):
        lo, hi = (int(v) for v in group.split("-"))
        preds = [r["age_pred"] for r in records if (r["age_min"], r["age_max"]) == (lo, hi)]
        ax.add_patch(plt.Rectangle((i - 0.4, lo), 0.8, hi - lo, color="tab:green", alpha=0.2))
        ax.scatter(np.full(len(preds), i) + np.linspace(-0.3, 0.3, len(preds)), preds, s=3, alpha=0.4)
    ax.set(xticks=range(len(groups)), xticklabels=groups, xlabel="labelled age group (shaded)")
    ax.set(ylabel="predicted age", title="Predicted age by labelled group")
    return _save(fig, out, "age_by_group.png")


def _gender_confusion(out: Path, records) -> str:
    known = [r for r in records if r["gender"] is not None]
    matrix = np.zeros((2, 2), dtype=int)
    for r in known:
        matrix[int(r["gender"]), int(r["p_female"] >= 0.5)] += 1
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["male", "female"], yticklabels=["male", "female"])
    ax.set(xlabel="predicted", ylabel="true", title="Gender confusion")
    return _save(fig, out, "gender_confusion.png")


def _calibration(out: Path, metrics) -> str:
    pairs = [(float(level), value) for level, value in metrics["interval_calibration"].items() if value is not None]
    levels, observed = [p[0] for p in pairs], [p[1] for p in pairs]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0.4, 1], [0.4, 1], color="black", linewidth=1, label="perfect")
    ax.plot(levels, observed, marker="o", label="model")
    ax.set(xlabel="nominal interval level", ylabel="observed coverage", title="Age interval calibration")
    ax.legend()
    return _save(fig, out, "interval_calibration.png")
