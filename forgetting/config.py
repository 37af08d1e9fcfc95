"""Structured-config schemas (checked at compose time), range checks, and component building."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the key and the allowed values."""


class TrackingMode(Enum):
    """`eval`: a no-grad pass over the training set after every epoch; `train`: each minibatch's
    training forward pass; `none`: no record (benchmarks, pure training: analysis needs one)."""

    eval = "eval"
    train = "train"
    none = "none"


DEVICE_CACHE = ("auto", "true", "false")


class FloatDtype(Enum):
    float32 = "float32"
    float16 = "float16"


class ClassWeights(Enum):
    """Cross-entropy class weights: `balanced` = n / (K * n_k), the inverse class frequency."""

    none = "none"
    balanced = "balanced"


class Job(Enum):
    forgetting_sets = "forgetting_sets"
    fit_quality = "fit_quality"
    seed_stability = "seed_stability"
    class_report = "class_report"
    warmup_decay = "warmup_decay"
    sampler_comparison = "sampler_comparison"
    ensemble = "ensemble"
    data_map = "data_map"


class TraceKind(Enum):
    survival = "survival"
    raw = "raw"
    running = "running"


class DecayModel(Enum):
    exp = "exp"
    exp_floor = "exp_floor"
    power = "power"


class Score(Enum):
    events = "events"
    decay = "decay"


class RunsSource(Enum):
    local = "local"
    wandb = "wandb"


@dataclass
class LearningRates:
    head: float = 1e-3
    backbone: float = 1e-4


@dataclass
class ArchConfig:
    _target_: str = "forgetting.models.create_model"
    name: str = MISSING
    model_name: str = MISSING
    pretrained: bool = False
    weights: str | None = None
    img_size: int | None = None
    drop_path_rate: float = 0.0
    channels_last: bool | None = None
    lr: LearningRates = field(default_factory=LearningRates)


@dataclass
class DigitsConfig:
    _target_: str = "forgetting.data.digits.load_digits"
    name: str = "digits"
    image_size: int = 32
    test_fraction: float = 0.2
    split_seed: int = 0
    augment: bool = True
    cache: bool = False
    cache_dir: str | None = None
    cache_in_memory: bool = False
    device_cache: str = "auto"


@dataclass
class ImageDatasetConfig:
    """Options shared by the datasets read from image files (see `forgetting.data.images`)."""

    _target_: str = MISSING
    name: str = MISSING
    root: str = "${oc.env:FORGETTING_DATA,data}"
    image_size: int = 224
    augment: bool = True
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    split_seed: int = 0
    cache: bool = False
    cache_dir: str | None = None
    cache_in_memory: bool = False
    device_cache: str = "auto"
    skip_corrupt: bool = False


@dataclass
class Cub200Config(ImageDatasetConfig):
    _target_: str = "forgetting.data.cub200.load_cub200"
    name: str = "cub200"
    val_fraction: float = 0.0
    crop_to_bbox: bool = False


@dataclass
class OctdlConfig(ImageDatasetConfig):
    _target_: str = "forgetting.data.octdl.load_octdl"
    name: str = "octdl"
    test_fraction: float = 0.2
    val_fraction: float = 0.1


@dataclass
class ImageFolderConfig(ImageDatasetConfig):
    _target_: str = "forgetting.data.imagefolder.load_imagefolder"
    name: str = "imagefolder"
    root: str = MISSING
    train_dir: str | None = None
    val_dir: str | None = None
    test_dir: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.0


@dataclass
class RandomSamplerConfig:
    """Every sampler: its class, name and budget (fraction of N per fine-tuning epoch)."""

    _target_: str = "forgetting.samplers.RandomSampler"
    name: str = "random"
    budget: float = 1.0


@dataclass
class SpacedRepetitionSamplerConfig(RandomSamplerConfig):
    _target_: str = "forgetting.samplers.SpacedRepetitionSampler"
    name: str = "spaced_repetition"
    reference: str = "auto"


@dataclass
class OnlineSpacedRepetitionSamplerConfig(RandomSamplerConfig):
    _target_: str = "forgetting.samplers.OnlineSpacedRepetitionSampler"
    name: str = "spaced_repetition_online"


@dataclass
class LeitnerSamplerConfig(RandomSamplerConfig):
    _target_: str = "forgetting.samplers.LeitnerSampler"
    name: str = "leitner"
    decks: int = 5


@dataclass
class WandbConfig:
    _target_: str = "forgetting.wandb_log.WandbLogger"
    project: str = "forgetting"
    entity: str | None = None
    mode: str | None = "${oc.env:WANDB_MODE,offline}"
    tags: list[str] = field(default_factory=list)
    log_artifact: bool = True


@dataclass
class NoLoggerConfig:
    _target_: str = "forgetting.wandb_log.NullLogger"


@dataclass
class TrainingConfig:
    warmup_epochs: int = 1
    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int = 256
    num_workers: int = 0
    weight_decay: float = 0.05
    optimizer: Any = field(
        default_factory=lambda: {"_target_": "torch.optim.AdamW", "_partial_": True}
    )
    scheduler: Any = field(
        default_factory=lambda: {
            "_target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
            "_partial_": True,
            "eta_min": 0.0,
        }
    )
    device: str = "auto"
    compile: bool = False
    deterministic: bool = True
    class_weights: ClassWeights = ClassWeights.none


@dataclass
class TrackingConfig:
    mode: TrackingMode = TrackingMode.eval
    float_dtype: FloatDtype = FloatDtype.float32


@dataclass
class TrainRunConfig:
    arch: Any = MISSING
    dataset: Any = MISSING
    sampler: Any = MISSING
    logger: Any = MISSING
    train: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0
    experiment: str = "default"
    overwrite: bool = False
    recipe: Any = None  # lookup tables that experiment configs interpolate from (experiment=paper)


@dataclass
class AnalysisOptions:
    jobs: list[Job] = field(default_factory=lambda: list(Job))
    top_q: float = 0.1
    trace: TraceKind = TraceKind.survival
    model: DecayModel = DecayModel.exp
    score: Score = Score.events
    include_warmup: bool = False
    min_points: int = 3
    el2n_epochs: int = 5
    bootstrap: int = 1000
    seed: int = 0
    max_table_rows: int = 20


@dataclass
class WandbRunsConfig:
    project: str = "forgetting"
    entity: str | None = None
    group: str = "${name}"
    cache_dir: str = "${oc.env:HOME,.}/.cache/forgetting/wandb"


@dataclass
class RunsConfig:
    source: RunsSource = RunsSource.local
    root: str = "outputs/default"
    dataset: list[str] | None = None
    arch: list[str] | None = None
    sampler: list[str] | None = None
    seed: list[int] | None = None
    intersect: bool = False
    wandb: WandbRunsConfig = field(default_factory=WandbRunsConfig)


@dataclass
class AnalyzeConfig:
    analysis: AnalysisOptions = MISSING
    logger: Any = MISSING
    runs: RunsConfig = field(default_factory=RunsConfig)
    name: str = "${basename:${runs.root}}"


def register_schemas() -> None:
    """Make the schemas available to the YAML configs (`defaults: [/schema/<group>/<name>]`)."""
    OmegaConf.register_new_resolver("basename", lambda p: Path(p).name or "runs", replace=True)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainRunConfig)
    cs.store(name="analyze_schema", node=AnalyzeConfig)
    cs.store(group="schema/analysis", name="options", node=AnalysisOptions)
    cs.store(group="schema/arch", name="timm", node=ArchConfig)
    cs.store(group="schema/dataset", name="digits", node=DigitsConfig)
    cs.store(group="schema/dataset", name="cub200", node=Cub200Config)
    cs.store(group="schema/dataset", name="octdl", node=OctdlConfig)
    cs.store(group="schema/dataset", name="imagefolder", node=ImageFolderConfig)
    cs.store(group="schema/sampler", name="random", node=RandomSamplerConfig)
    cs.store(group="schema/sampler", name="spaced_repetition", node=SpacedRepetitionSamplerConfig)
    cs.store(group="schema/sampler", name="spaced_repetition_online",
             node=OnlineSpacedRepetitionSamplerConfig)
    cs.store(group="schema/sampler", name="leitner", node=LeitnerSamplerConfig)
    cs.store(group="schema/logger", name="wandb", node=WandbConfig)
    cs.store(group="schema/logger", name="none", node=NoLoggerConfig)


def config_dir() -> Path:
    """The Hydra config directory: shipped inside the wheel, or top-level `conf/` in a checkout."""
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "conf"


def validate(cfg: DictConfig) -> None:
    """Range checks that a type schema cannot express; raise ConfigError naming the key."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        raise ConfigError(f"{exc.full_key} is required: pass {exc.full_key}=<value>") from exc
    except InterpolationResolutionError as exc:
        msg = str(exc.msg).splitlines()[0]
        hint = (" (the experiment looks it up by arch and dataset name: add the entry, or set "
                f"{exc.full_key} on the command line)" if "recipe." in msg else "")
        raise ConfigError(f"{exc.full_key} cannot be resolved: {msg}{hint}") from exc
    _at_least(cfg, "train.epochs", 1)
    _at_least(cfg, "train.warmup_epochs", 0)
    _at_least(cfg, "train.batch_size", 1)
    _at_least(cfg, "train.eval_batch_size", 1)
    _at_least(cfg, "train.num_workers", 0)
    budget = cfg.sampler.get("budget", 1.0)
    if not 0.0 < budget <= 1.0:
        raise ConfigError(
            f"sampler.budget={budget} is invalid: it is the fraction of training samples "
            "presented per fine-tuning epoch and must lie in (0, 1]"
        )
    if "decks" in cfg.sampler:
        _at_least(cfg, "sampler.decks", 1)
    _check_tracking(cfg)
    _check_device_cache(cfg.dataset)
    _at_least(cfg, "dataset.image_size", 1)
    check_fractions(**{k: cfg.dataset[k] for k in ("test_fraction", "val_fraction")
                       if k in cfg.dataset})
    scale = cfg.dataset.get("scale")
    if scale is not None and not (len(scale) == 2 and 0.0 < scale[0] <= scale[1] <= 1.0):
        raise ConfigError(
            f"dataset.scale={list(scale)} is invalid: it is the [min, max] area fraction of the "
            "random resized crop, with 0 < min <= max <= 1"
        )


def device_cache_mode(dataset: DictConfig) -> str:
    """`dataset.device_cache` as one of `auto`, `true`, `false` (the command line's `true` is a
    boolean, stored as the string "True")."""
    return str(dataset.get("device_cache", "auto")).lower()


def _check_device_cache(dataset: DictConfig) -> None:
    mode = device_cache_mode(dataset)
    if mode not in DEVICE_CACHE:
        raise ConfigError(f"dataset.device_cache={dataset.device_cache} is invalid: choose from "
                          f"{', '.join(DEVICE_CACHE)}")
    if mode == "true" and "root" in dataset and not dataset.cache:
        raise ConfigError("dataset.device_cache=true needs dataset.cache=true: the device holds "
                          "the decoded images of a dataset read from files")


def _check_tracking(cfg: DictConfig) -> None:
    """`tracking.mode=none` leaves nothing for a sampler that learns from this run's record."""
    if cfg.tracking.mode != TrackingMode.none:
        return
    if getattr(hydra.utils.get_class(cfg.sampler._target_), "learns_from_record", False):
        raise ConfigError(f"tracking.mode=none records nothing, but sampler={cfg.sampler.name} "
                          "chooses from this run's record: use tracking.mode=eval or train")


def check_fractions(**fractions: float) -> None:
    """Each split fraction in [0, 1) and their sum below 1; ConfigError naming `dataset.<key>`."""
    for key, value in fractions.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"dataset.{key}={value} is invalid: it must lie in [0, 1)")
    if sum(fractions.values()) >= 1.0:
        named = " + ".join(f"dataset.{k}={v}" for k, v in fractions.items())
        raise ConfigError(f"{named} leaves no training samples: the sum must be below 1")


def validate_analysis(cfg: DictConfig) -> None:
    """Range checks of the analysis options; raise ConfigError naming the key."""
    top_q = cfg.analysis.top_q
    if not 0.0 < top_q <= 1.0:
        raise ConfigError(f"analysis.top_q={top_q} is invalid: it must lie in (0, 1]")
    _at_least(cfg, "analysis.min_points", 2)
    _at_least(cfg, "analysis.el2n_epochs", 1)
    _at_least(cfg, "analysis.bootstrap", 100)
    if not cfg.analysis.jobs:
        raise ConfigError(f"analysis.jobs is empty: choose from {[j.value for j in Job]}")


def _at_least(cfg: DictConfig, key: str, low: int) -> None:
    value = _select(cfg, key)
    if value < low:
        raise ConfigError(f"{key}={value} is invalid: it must be an integer >= {low}")


def _select(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def build(node: DictConfig, exclude: tuple[str, ...] = ("name",), **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` a `_target_` node, leaving out its descriptive keys."""
    args = {k: v for k, v in node.items() if k not in exclude}
    return hydra.utils.instantiate(args, **kwargs, _convert_="all")
