"""timm models: creation (offline-aware pretrained weights), head/backbone parameter groups."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
from torch import nn


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
    """`timm.create_model` with a new `num_classes` head; fails fast if weights are unreachable."""
    kwargs: dict = {"num_classes": num_classes, "drop_path_rate": drop_path_rate}
    if img_size is not None:
        kwargs["img_size"] = img_size
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"arch.weights={weights}: no such file")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        pretrained = True
    elif pretrained:
        _require_reachable_weights(model_name)
    return timm.create_model(model_name, pretrained=pretrained, **kwargs)


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


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to `device`; on CUDA also use the channels_last memory format."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model
