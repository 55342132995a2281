"""PNG plots of a benchmark run (matplotlib, no display needed).

- ``ms_per_step.png``: ms/step against atoms per engine and settings, log-log,
  one panel per model, one rank.
- ``turbo_speedup.png``: default ms/step / turbo ms/step per engine and size.
- ``rank_scaling.png``: speed-up over one rank against the rank count, per
  engine, settings and size.

A plot without data (e.g. no multi-rank rows) says so in the figure instead of
being left out, so that a run always has the same files.
"""

import pathlib
from typing import Dict, List

from .report import ok_rows

FILES = ("ms_per_step.png", "turbo_speedup.png", "rank_scaling.png")


def write_all(record: dict, directory: pathlib.Path) -> List[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    rows = ok_rows(record)
    models = list(dict.fromkeys(row["model"] for row in record["rows"])) or ["(none)"]
    paths = []
    for name, draw in zip(FILES, (_ms_per_step, _turbo_speedup, _rank_scaling)):
        path = directory / name
        draw(rows, models, record, path)
        paths.append(path)
    return paths


_ENGINES = ["raw", "driver", "ase", "metatomic-ase", "lammps", "lammps-lj", "ipi",
            "ipi-metatomic"]
_DASHES = {"default": "-", "turbo": "--", "reference": ":"}


def _color(engine: str):
    """One colour per engine, the same in every plot."""
    import matplotlib

    return matplotlib.colormaps["tab10"](_rank(engine) % 10)


def _rank(engine: str) -> int:
    return _ENGINES.index(engine) if engine in _ENGINES else len(_ENGINES)


def _dash(settings: str) -> str:
    return _DASHES.get(settings, "-.")


def _figure(models):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(models), figsize=(6.5 * len(models) + 2.0, 4.6), squeeze=False
    )
    return figure, list(axes[0])


def _legend(axis):
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _finish(figure, path, title):
    import matplotlib.pyplot as plt

    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _empty(axis, text):
    axis.text(0.5, 0.5, text, ha="center", va="center", transform=axis.transAxes,
              fontsize=10, color="grey", wrap=True)
    axis.set_xticks([])
    axis.set_yticks([])


def _caption(record) -> str:
    options = record["options"]
    machine = record["machine"]
    return (f"{machine.get('cpu') or 'cpu'}; {options['threads']} thread(s)/rank, "
            f"{options['device']}")


def _ms_per_step(rows, models, record, path):
    from matplotlib.ticker import NullFormatter

    figure, axes = _figure(models)
    for axis, model in zip(axes, models):
        lines: Dict[tuple, list] = {}
        for row in rows:
            if row["model"] == model and row["ranks"] == 1:
                lines.setdefault((row["engine"], row["settings"]), []).append(row)
        if not lines:
            _empty(axis, f"{model}: no single-rank rows")
            continue
        ordered = sorted(lines.items(), key=lambda item: (_rank(item[0][0]), item[0][1]))
        for (engine, settings), points in ordered:
            points.sort(key=lambda r: r["atoms"])
            axis.errorbar(
                [r["atoms"] for r in points], [r["ms_per_step"] for r in points],
                yerr=[r["spread_ms"] for r in points], marker="o",
                linestyle=_dash(settings), color=_color(engine), capsize=2,
                label=f"{engine} ({settings})",
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        sizes = sorted({r["atoms"] for points in lines.values() for r in points})
        axis.set_xticks(sizes, [str(atoms) for atoms in sizes])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("atoms")
        axis.set_ylabel("ms / step")
        axis.set_title(model)
        axis.grid(True, which="both", alpha=0.3)
        _legend(axis)
    _finish(figure, path, f"ms per MD step, 1 rank ({_caption(record)})")


def _turbo_speedup(rows, models, record, path):
    figure, axes = _figure(models)
    for axis, model in zip(axes, models):
        pairs = {}
        for row in rows:
            if row["model"] != model or row["settings"] != "default":
                continue
            for other in rows:
                if (other["settings"] == "turbo" and other["model"] == model
                        and other["engine"] == row["engine"] and other["atoms"] == row["atoms"]
                        and other["ranks"] == row["ranks"]):
                    key = (row["engine"], row["ranks"])
                    pairs.setdefault(key, []).append(
                        (row["atoms"], row["ms_per_step"] / other["ms_per_step"])
                    )
        if not pairs:
            _empty(axis, f"{model}: no default/turbo pairs")
            continue
        sizes = sorted({atoms for values in pairs.values() for atoms, _ in values})
        width = 0.8 / len(pairs)
        ordered = sorted(pairs.items(), key=lambda item: (_rank(item[0][0]), item[0][1]))
        for number, ((engine, ranks), values) in enumerate(ordered):
            lookup = dict(values)
            xs = [i + number * width for i, atoms in enumerate(sizes) if atoms in lookup]
            ys = [lookup[atoms] for atoms in sizes if atoms in lookup]
            label = engine + (f" np={ranks}" if ranks > 1 else "")
            axis.bar(xs, ys, width=width, label=label, color=_color(engine),
                     hatch="//" if ranks > 1 else None, edgecolor="white")
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.axhline(2.0, color="red", linewidth=0.8, linestyle="--", label="target 2x")
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))])
        axis.set_xticklabels([str(atoms) for atoms in sizes])
        axis.set_xlabel("atoms")
        axis.set_ylabel("turbo speed-up (default ms / turbo ms)")
        axis.set_title(model)
        _legend(axis)
    _finish(figure, path, f"turbo vs default ({_caption(record)})")


def _rank_scaling(rows, models, record, path):
    figure, axes = _figure(models)
    for axis, model in zip(axes, models):
        series: Dict[tuple, dict] = {}
        for row in rows:
            if row["model"] == model:
                key = (row["engine"], row["settings"], row["atoms"])
                series.setdefault(key, {})[row["ranks"]] = row["ms_per_step"]
        series = {key: values for key, values in series.items()
                  if 1 in values and len(values) > 1}
        if not series:
            _empty(axis, f"{model}: no multi-rank rows")
            continue
        top = 1
        for (engine, settings, atoms), values in sorted(
            series.items(), key=lambda item: (_rank(item[0][0]),) + item[0][1:]
        ):
            ranks = sorted(values)
            top = max(top, ranks[-1])
            axis.plot(ranks, [values[1] / values[n] for n in ranks], marker="o",
                      color=_color(engine), linestyle=_dash(settings),
                      label=f"{engine} ({settings}) {atoms} atoms")
        axis.plot([1, top], [1, top], color="grey", linestyle=":", label="ideal")
        axis.set_xlabel("MPI ranks")
        axis.set_xticks(range(1, top + 1))
        axis.set_ylabel("speed-up over 1 rank")
        axis.set_title(model)
        axis.grid(True, alpha=0.3)
        _legend(axis)
    _finish(figure, path, f"scaling with MPI ranks ({_caption(record)})")
