"""Train one run: `python -m forgetting.train arch=deit_small dataset=digits seed=0` (or `-m`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from forgetting import checkpoint
from forgetting.config import ConfigError, build, config_dir, register_schemas, validate
from forgetting.data import DataBundle, DatasetError
from forgetting.dynamics import RecordError
from forgetting.models import PretrainedWeightsError, data_config
from forgetting.samplers import reference_decay
from forgetting.training import Trainer

log = logging.getLogger(__name__)
register_schemas()
TRAINER_KEYS = ("name", "lr", "channels_last")  # arch keys the trainer uses, not create_model
DATA_TRAINER_KEYS = ("device_cache",)  # dataset keys the trainer uses, not the loaders


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> Path:
    """Train (or resume, or skip when finished) the run of `cfg`; returns its run dir."""
    validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else Path(HydraConfig.get().runtime.output_dir)
    checkpoint.ensure_writable(run_dir)
    if cfg.overwrite:
        checkpoint.clear(run_dir)
    checkpoint.check_same_config(run_dir, cfg)
    if checkpoint.is_finished(run_dir):
        print(f"already finished, skipped (overwrite=true trains again): {run_dir}")
        return run_dir
    checkpoint.write_config(run_dir, cfg)
    torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    data = build_data(cfg)
    torch.manual_seed(cfg.seed)
    model = build(cfg.arch, exclude=TRAINER_KEYS, num_classes=data.num_classes)
    sampler = build_sampler(cfg, data, run_dir)
    logger = build(cfg.logger, exclude=())
    name = f"{data.name}-{cfg.arch.name}-{cfg.sampler.name}-s{cfg.seed}"
    logger.start(run_dir, name=name, group=cfg.experiment, job_type="train",
                 config=checkpoint.resolved(cfg))
    try:
        dynamics = Trainer(cfg, data, model, sampler, logger, run_dir).fit()
        dynamics.save(run_dir / checkpoint.DYNAMICS)
        logger.log_artifact(run_dir / checkpoint.DYNAMICS, name=f"dynamics-{cfg.experiment}-{name}",
                            type="dynamics", metadata=dynamics.meta)
    finally:
        logger.finish()
    print(f"run dir: {run_dir}")
    return run_dir


def build_data(cfg: DictConfig) -> DataBundle:
    """The dataset of `cfg`, at the pixels of its arch."""
    return build(cfg.dataset, exclude=DATA_TRAINER_KEYS,
                 data_config=data_config(cfg.arch.model_name))


def build_sampler(cfg: DictConfig, data: Any, run_dir: Path) -> Any:
    """The sampler of `cfg`; a static one gets its reference run's decay constants (checked)."""
    extra = {}
    if "reference" in cfg.sampler:
        extra["lam"] = reference_decay(cfg.sampler.reference, run_dir, data.sample_keys,
                                       data.name, cfg.arch.name, int(cfg.seed))
    return build(cfg.sampler, exclude=("name", "reference"), n_samples=len(data.labels),
                 seed=cfg.seed, **extra)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (ConfigError, checkpoint.RunDirError, RecordError, PretrainedWeightsError,
            DatasetError) as exc:
        sys.exit(f"forgetting-train: error: {exc}")


if __name__ == "__main__":
    main()
