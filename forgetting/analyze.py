"""Post-hoc analysis: `python -m forgetting.analyze runs.root=outputs/demo` writes the report."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from forgetting import checkpoint
from forgetting.analyses import JOBS, Context, Section
from forgetting.config import ConfigError, build, config_dir, register_schemas, validate_analysis
from forgetting.report import write_report
from forgetting.runs import RunsError, by_dataset, find_runs, load_wandb_runs

log = logging.getLogger(__name__)
register_schemas()


def run(cfg: DictConfig, out_dir: str | Path | None = None) -> Path:
    """Analyse every finished run that `cfg.runs` selects; returns the path of report.md."""
    validate_analysis(cfg)
    out = Path(out_dir) if out_dir is not None else Path(HydraConfig.get().runtime.output_dir)
    checkpoint.ensure_writable(out)
    found = _find(cfg)
    groups = by_dataset(found.runs, intersect=cfg.runs.intersect)
    options = SimpleNamespace(**checkpoint.resolved(cfg)["analysis"])
    sections: dict[str, list[Section]] = {}
    for dataset, runs in groups.items():
        ctx = Context(dataset, runs, options, out)
        sections[dataset] = [JOBS[job](ctx) for job in options.jobs]
    header = {"experiment": cfg.name, "runs_root": str(cfg.runs.root),
              "analysis": vars(options),
              "runs_per_dataset": {ds: len(r) for ds, r in groups.items()},
              "runs": {ds: [str(r.path) for r in rs] for ds, rs in groups.items()}}
    report = write_report(out, header, sections, found.unfinished, cfg.analysis.max_table_rows)
    _log_to_wandb(cfg, out, sections)
    print(f"report: {report}")
    return report


def _find(cfg: DictConfig):  # noqa: ANN202 - a runs.Found
    if cfg.runs.source.value == "wandb":
        wb = cfg.runs.wandb
        return load_wandb_runs(wb.project, wb.group, wb.entity, wb.cache_dir)
    filters = {k: cfg.runs[k] for k in ("dataset", "arch", "sampler", "seed")}
    found = find_runs(cfg.runs.root, filters)
    for path in found.unfinished:
        log.warning("skipping unfinished run %s", path)
    return found


def _log_to_wandb(cfg: DictConfig, out: Path, sections: dict[str, list[Section]]) -> None:
    logger = build(cfg.logger, exclude=())
    logger.start(out, name=f"analysis-{cfg.name}", group=cfg.name,
                 job_type="analysis", config=checkpoint.resolved(cfg))
    try:
        for dataset, secs in sections.items():
            for sec in secs:
                logger.log_tables({f"{dataset}/{k}": v for k, v in sec.tables.items()})
                logger.log_images({f"{dataset}/{p.stem}": p for p in sec.figures})
    finally:
        logger.finish()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="analyze")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (ConfigError, RunsError, checkpoint.RunDirError) as exc:
        sys.exit(f"forgetting-analyze: error: {exc}")


if __name__ == "__main__":
    main()
