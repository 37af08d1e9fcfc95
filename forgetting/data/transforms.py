"""timm's train and eval pipelines at the arch's input size, ending in uint8 CHW tensors.

The pipelines stop before normalisation: the trainer scales to [0, 1] and normalises on its
device with the arch's mean and std, so the same images serve every arch and the decoded cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import timm.data
import torch
from PIL import Image

Transform = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class PixelConfig:
    """How an image becomes a model input: the size, and the arch's interpolation and eval crop."""

    image_size: int
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    crop_mode: str = "center"
    augment: bool = True
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    @classmethod
    def resolve(
        cls, image_size: int, data_config: Mapping[str, Any] | None = None, augment: bool = True,
        scale: Sequence[float] = (0.08, 1.0),
    ) -> PixelConfig:
        """The dataset's size with the interpolation and crop of the arch's timm data config
        (`forgetting.models.data_config`); timm's defaults where it has none."""
        config = dict(data_config or {})
        return cls(
            image_size=int(image_size),
            interpolation=str(config.get("interpolation") or "bilinear"),
            crop_pct=float(config.get("crop_pct") or timm.data.DEFAULT_CROP_PCT),
            crop_mode=str(config.get("crop_mode") or "center"),
            augment=bool(augment), scale=(float(scale[0]), float(scale[1])),
        )

    def eval_key(self) -> str:
        """What determines the eval-resolution pixels (the decoded cache's part of its key)."""
        return f"{self.image_size}-{self.interpolation}-{self.crop_pct}-{self.crop_mode}"


def eval_transform(pixels: PixelConfig) -> Transform:
    """Resize the shorter side to `image_size / crop_pct`, centre crop `image_size` (timm eval)."""
    return timm.data.create_transform(
        pixels.image_size, is_training=False, interpolation=pixels.interpolation,
        crop_pct=pixels.crop_pct, crop_mode=pixels.crop_mode, normalize=False,
    )


def train_transform(pixels: PixelConfig) -> Transform:
    """Random resized crop (area fraction in `scale`) and horizontal flip; eval pipeline if no
    augmentation. timm draws the crop from Python's `random`, which the trainer seeds per epoch."""
    if not pixels.augment:
        return eval_transform(pixels)
    return timm.data.create_transform(
        pixels.image_size, is_training=True, scale=pixels.scale, ratio=pixels.ratio, hflip=0.5,
        color_jitter=None, interpolation=pixels.interpolation, normalize=False,
    )
