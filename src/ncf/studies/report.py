"""What a study leaves in its output folder: a CSV of every number, the figures, and a
Markdown report that embeds the figures and states the protocol and the seeds."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncf.studies import plots
from ncf.studies.cells import CELLS, write_text
from ncf.studies.runner import MONITOR, CellEvent, Settings, StudyData
from ncf.studies.specs import Study

#: The column of the validation figure that selected each cell (:data:`MONITOR`).
VAL_LABEL = f"val full {MONITOR.split('@')[0].upper()}@{MONITOR.split('@')[1]}"

REPORT = "report.md"
#: The columns of the CSV that describe a cell (its results follow).
KEY_COLUMNS = ("study", "dataset", "series", "model", "x", "factors", "layers", "negatives",
               "epochs", "seed")  # fmt: skip


@dataclass(frozen=True)
class Written:
    """The files a study wrote."""

    csv: Path
    figures: tuple[Path, ...]
    report: Path


def rows_of(study: Study, events: Sequence[CellEvent], data: StudyData, seed: int) -> list[dict]:
    """One flat row per cell: its settings, then its results."""
    rows = []
    for ev in events:
        p = ev.cell.params
        layers = p.get("layers")
        rows.append({
            "study": study.name, "dataset": data.source, "series": ev.cell.series,
            "model": ev.cell.model, "x": ev.cell.x, "factors": p.get("factors"),
            "layers": "-".join(map(str, layers)) if layers else None,
            "negatives": p.get("negatives"), "epochs": p.get("epochs"), "seed": seed,
            **ev.result,
        })  # fmt: skip
    return rows


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(c for r in rows for c in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_cell(row.get(c)) for c in columns})
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> str:
    """A Markdown table of ``columns`` (key -> header); floats to 4 decimals."""
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_md_cell(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _md_cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if column.endswith("seconds"):
            return f"{value:.1f}"
        return f"{value:.3g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value).replace("|", "/")


def write_study(
    study: Study,
    events: Sequence[CellEvent],
    data: StudyData,
    settings: Settings,
    out: Path,
    *,
    command: str,
) -> Written:
    """Write ``<study>.csv``, the figure(s) and ``report.md`` into ``out``."""
    k = settings.k
    rows = rows_of(study, events, data, settings.seed)
    csv_path = write_text(out / f"{study.name}.csv", to_csv(rows))
    figure = out / f"{study.name}.png"
    where = f"{data.source}, seed {settings.seed}"
    if study.kind == "bars":
        plots.study_bars(rows, [(f"hr@{k}", f"ndcg@{k}"), (f"full_recall@{k}", f"full_ndcg@{k}")],
                         figure, title=f"{study.title} ({where})")  # fmt: skip
        columns = {"series": "model", f"hr@{k}": f"HR@{k}", f"ndcg@{k}": f"NDCG@{k}",
                   f"full_recall@{k}": f"full Recall@{k}", f"full_ndcg@{k}": f"full NDCG@{k}",
                   f"val_{MONITOR}": VAL_LABEL,
                   "best_epoch": "best epoch", "train_seconds": "train seconds",
                   "setting": "setting"}  # fmt: skip
    else:
        plots.study_lines(rows, (f"hr@{k}", f"ndcg@{k}"), figure,
                          title=f"{study.title} ({where})", x_label=study.x_label)  # fmt: skip
        columns = {"series": "model", "x": study.x_label, f"hr@{k}": f"HR@{k}",
                   f"ndcg@{k}": f"NDCG@{k}", f"full_recall@{k}": f"full Recall@{k}",
                   f"full_ndcg@{k}": f"full NDCG@{k}", f"val_{MONITOR}": VAL_LABEL,
                   "best_epoch": "best epoch", "train_seconds": "train seconds"}  # fmt: skip
    ran = sum(not ev.skipped for ev in events)
    text = "\n".join([
        f"# {study.title}: {data.source}",
        "",
        f"Made by `{command}`.",
        "",
        "## Protocol",
        "",
        *protocol_lines(data, settings, len(events), ran),
        *(f"- {note}" for note in study.notes),
        "",
        "## Results",
        "",
        f"![{study.title}]({figure.name})",
        "",
        markdown_table(rows, columns),
        "",
        f"Every number, with each cell's settings: [`{csv_path.name}`]({csv_path.name}); "
        f"finished cells: `{CELLS}/`.",
        "",
    ])  # fmt: skip
    report = write_text(out / REPORT, text)
    return Written(csv_path, (figure,), report)


def protocol_lines(data: StudyData, settings: Settings, cells: int, ran: int) -> list[str]:
    d, k = data.describe(), settings.k
    return [
        f"- Data: `{d['dataset']}`, {d['users']:,} users, {d['items']:,} items, "
        f"{d['train_rows']:,} training interactions.",
        f"- Test: {d['test']}; scored once per cell, after selection: HR@{k}, NDCG@{k} and "
        f"MRR of the held-out item among its candidates, and a full ranking of every item "
        f"(training items excluded: Recall@{k}, NDCG@{k}).",
        f"- Selection: each model's epochs (and the default preset's candidate, and ALS's "
        f"grid) are picked by validation {VAL_LABEL[4:]} on a leave-one-out carve of the "
        "training data (each user's latest training interaction ranked against every item, "
        "their other training items masked); the test set never selects anything.",
        f"- Training: `Recommender` with preset `{settings.preset}` under each cell's settings "
        "(the table and the CSV); what a cell does not set is the preset's or the defaults'.",
        f"- Seeds: {settings.seed} for weights, negative sampling, shuffling, the validation "
        "split and (where the dataset has none) the test split.",
        f"- Cells: {cells} ({ran} run in the last invocation, {cells - ran} reused from "
        "earlier ones).",
    ]


def write_cutoffs(
    rows: Sequence[Mapping[str, Any]], out: Path, *, model_dir: Path, command: str, about: str
) -> Written:
    """The ``k`` experiment's CSV, figure and report."""
    csv_path = write_text(out / "k.csv", to_csv(rows))
    figure = plots.cutoff_lines(rows, out / "k.png", title=f"Metrics against K ({about})")
    shown = [r for r in rows if int(r["k"]) in (1, 5, 10, 20, 50)]
    table = markdown_table(
        shown,
        {
            "k": "K",
            "hr": "HR@K",
            "ndcg": "NDCG@K",
            "full_recall": "full Recall@K",
            "full_ndcg": "full NDCG@K",
        },
    )
    text = "\n".join([
        f"# Metrics against the cut-off K: {model_dir}",
        "",
        f"Made by `{command}`.",
        "",
        "## Protocol",
        "",
        f"- Model: `{model_dir}` ({about}).",
        "- Test: the split saved with the model (`ncf train`'s), scored once for every K: each "
        "held-out item among its saved candidates (HR@K, NDCG@K), and a full ranking of every "
        "item with the user's training items excluded (Recall@K, NDCG@K).",
        "",
        "## Results",
        "",
        f"![Metrics against K]({figure.name})",
        "",
        table,
        "",
        f"Every K: [`{csv_path.name}`]({csv_path.name}).",
        "",
    ])  # fmt: skip
    return Written(csv_path, (figure,), write_text(out / REPORT, text))


__all__ = ["REPORT", "Written", "markdown_table", "rows_of", "to_csv", "write_cutoffs",
           "write_study"]  # fmt: skip
