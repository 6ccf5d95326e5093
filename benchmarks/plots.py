"""The scaling benchmarks' plots: one measure per point on the left axis, peak memory on the
right, over a log x axis labelled at the points themselves."""

from __future__ import annotations

from pathlib import Path


def scaling_plot(path: Path, xs, values, ylabel: str, peak_mib, xlabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, left = plt.subplots(figsize=(4.8, 3.0), dpi=100)
    left.plot(xs, values, "o-", color="tab:blue")
    left.set_xlabel(xlabel)
    left.set_ylabel(ylabel, color="tab:blue")
    left.set_xscale("log")
    left.minorticks_off()  # a log axis's minor labels overlap; label the points themselves
    left.set_xticks(list(xs), [f"{x:,.0f}" for x in xs])
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(xs, peak_mib, "s--", color="tab:red")
    right.set_ylabel("peak RSS (MiB)", color="tab:red")
    right.set_ylim(bottom=0)
    left.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
