"""The report: report.md, tables/*.csv and results.json (figures are written by the jobs)."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forgetting.analyses import Section
from forgetting.checkpoint import atomic_write


def write_report(out_dir: Path, header: dict[str, Any], sections: dict[str, list[Section]],
                 unfinished: list[Path], max_rows: int = 20) -> Path:
    """Write every output of one analysis invocation under `out_dir`; returns report.md."""
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    for dataset, secs in sections.items():
        for sec in secs:
            for name, table in sec.tables.items():
                atomic_write(out_dir / "tables" / f"{dataset}_{name}.csv",
                             table.to_csv(index=False).encode())
    results = {**header, "unfinished_runs": [str(p) for p in unfinished],
               "datasets": {ds: {s.job: {"skipped": s.skipped, **s.numbers} for s in secs}
                            for ds, secs in sections.items()}}
    atomic_write(out_dir / "results.json", json.dumps(_jsonable(results), indent=2).encode())
    text = _markdown(out_dir, header, sections, unfinished, max_rows)
    atomic_write(out_dir / "report.md", text.encode())
    return out_dir / "report.md"


def _markdown(out_dir: Path, header: dict[str, Any], sections: dict[str, list[Section]],
              unfinished: list[Path], max_rows: int) -> str:
    opts = header["analysis"]
    lines = [f"# Forgetting report: {header['experiment']}", "",
             f"Runs from `{header['runs_root']}`; trace `{opts['trace']}`, "
             f"model `{opts['model']}`, "
             f"score `{opts['score']}`, top-q {opts['top_q']}, include_warmup "
             f"{opts['include_warmup']}.", ""]
    if unfinished:
        lines += [f"Skipped {len(unfinished)} unfinished run(s): "
                  + ", ".join(f"`{p}`" for p in unfinished), ""]
    for dataset, secs in sections.items():
        lines += [f"## {dataset} ({header['runs_per_dataset'][dataset]} runs)", "",
                  "### Headline", "", *headline_table(secs), ""]
        for sec in secs:
            lines += [f"### {sec.title}", ""]
            if sec.skipped:
                lines += [f"*Skipped: {sec.skipped}.*", ""]
            lines += [f"- {line}" for line in sec.lines] + [""]
            for name, table in sec.tables.items():
                lines += [f"`tables/{dataset}_{name}.csv`", "", *_md_table(table, max_rows), ""]
            lines += [f"![{p.stem}]({p.relative_to(out_dir)})" for p in sec.figures] + [""]
    return "\n".join(lines)


def headline_table(sections: list[Section]) -> list[str]:
    rows = [row for sec in sections for row in sec.headline]
    return _md_table(pd.DataFrame(rows, columns=["finding", "ours", "published"]), len(rows))


def _md_table(table: pd.DataFrame, max_rows: int) -> list[str]:
    shown = table.head(max_rows)
    out = ["| " + " | ".join(map(str, shown.columns)) + " |",
           "|" + "---|" * len(shown.columns)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(False)]
    if len(table) > max_rows:
        out.append(f"\n({len(table) - max_rows} more rows in the CSV)")
    return out


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(value)


def _jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars/arrays unwrapped, NaN and inf as null."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def excerpt(report: Path) -> str:
    """The headline tables of a report (for the README)."""
    text = report.read_text().splitlines()
    out, keep = [], False
    for line in text:
        if line.startswith("## "):
            out += ["", line.replace("## ", "**") + "**", ""]
        keep = line == "### Headline" or (keep and not line.startswith("### "))
        if keep and line.startswith("|"):
            out.append(line)
    return "\n".join(out).strip() + "\n"


START, END = "<!-- demo-report:start -->", "<!-- demo-report:end -->"


def update_readme(readme: Path, report: Path) -> None:
    """Replace the README's demo-report excerpt by the headline tables of `report`."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block to fill")
    body = f"{START}\n_From `{report}`:_\n\n{excerpt(report)}{END}"
    pattern = re.escape(START) + ".*?" + re.escape(END)
    atomic_write(readme, re.sub(pattern, lambda _: body, text, flags=re.S).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description="Put a report's headline tables into the README.")
    parser.add_argument("readme", type=Path)
    parser.add_argument("report", type=Path)
    args = parser.parse_args()
    update_readme(args.readme, args.report)


if __name__ == "__main__":
    main()
