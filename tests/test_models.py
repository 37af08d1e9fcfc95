import time
from pathlib import Path

import pytest
import timm
import torch

from forgetting.models import (
    PretrainedWeightsError,
    backbone_parameters,
    create_model,
    freeze_backbone,
    head_parameters,
    set_train_mode,
)


@pytest.mark.parametrize("offline_flag", ["1", "0"])
def test_pretrained_without_weights_fails_fast_naming_both_fixes(
        offline_flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", offline_flag)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    start = time.monotonic()
    with pytest.raises(PretrainedWeightsError) as err:
        create_model("resnet18.a1_in1k", num_classes=10, pretrained=True)
    assert time.monotonic() - start < 10
    assert "arch.weights=<file>" in str(err.value) and "arch.pretrained=false" in str(err.value)


def test_local_weights_file_loads_backbone_and_resets_head(tmp_path: Path) -> None:
    source = timm.create_model("test_resnet", num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    model = create_model("test_resnet", num_classes=7, weights=str(tmp_path / "weights.pth"))
    assert model.get_classifier().out_features == 7
    loaded, original = model.state_dict(), source.state_dict()
    head = {n for n, _ in model.get_classifier().named_parameters()}
    backbone_keys = [k for k in original if not any(k.endswith(h) and "fc" in k for h in head)]
    for key in backbone_keys:
        if key in loaded and loaded[key].shape == original[key].shape:
            torch.testing.assert_close(loaded[key], original[key])


def test_missing_weights_file_is_named() -> None:
    with pytest.raises(PretrainedWeightsError, match="arch.weights=/no/such.pth: no such file"):
        create_model("test_resnet", num_classes=3, weights="/no/such.pth")


@pytest.mark.parametrize(("name", "kwargs"), [("test_resnet", {}), ("test_vit", {"img_size": 16})])
def test_head_and_backbone_partition_the_parameters(name: str, kwargs: dict) -> None:
    model = create_model(name, num_classes=5, **kwargs)
    head, backbone = head_parameters(model), backbone_parameters(model)
    assert {id(p) for p in head} == {id(p) for p in model.get_classifier().parameters()}
    assert len(head) + len(backbone) == len(list(model.parameters()))
    freeze_backbone(model, frozen=True)
    assert not any(p.requires_grad for p in backbone) and all(p.requires_grad for p in head)
    set_train_mode(model, backbone_frozen=True)
    assert model.get_classifier().training
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    freeze_backbone(model, frozen=False)
    assert all(p.requires_grad for p in model.parameters())
