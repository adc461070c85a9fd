"""Evaluation plots (matplotlib, a dev dependency, imported only when plotting)."""

from __future__ import annotations

from pathlib import Path

from ranker.features import FEATURES


def plot_metrics(
    table: dict, title: str, out: Path, keys: tuple[str, ...] = ("ndcg@10", "hr@10", "mrr")
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(table)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        ax.bar(
            [i + j * width for i in range(len(methods))],
            [table[m][key] for m in methods],
            width,
            label=key,
        )
    ax.set_xticks([i + width for i in range(len(methods))], methods, rotation=20)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_importance(booster, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gain = booster.feature_importance("gain")
    order = gain.argsort()[::-1][:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([FEATURES[i] for i in order], gain[order])
    ax.set_xlabel("total gain")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
