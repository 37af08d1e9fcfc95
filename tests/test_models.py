import time
from pathlib import Path

import pytest
import timm
import torch

from forgetting.config import ConfigError
from forgetting.models import (
    PretrainedWeightsError,
    backbone_parameters,
    create_model,
    data_config,
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


def test_weights_file_of_another_architecture_is_refused_whole(tmp_path: Path) -> None:
    torch.save(timm.create_model("test_vit").state_dict(), tmp_path / "vit.pth")
    with pytest.raises(PretrainedWeightsError) as err:
        create_model("test_resnet", num_classes=3, weights=str(tmp_path / "vit.pth"))
    message = str(err.value)
    assert "does not fit arch.model_name=test_resnet, nothing was loaded" in message
    assert "another architecture" in message and "cls_token" in message
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="cannot be read as a .pth or .safetensors"):
        create_model("test_resnet", num_classes=3, weights=str(tmp_path / "junk.pth"))


def test_safetensors_without_batchnorm_counters_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = timm.create_model("test_resnet", num_classes=1000)
    save_file({k: v for k, v in source.state_dict().items()
               if not k.endswith("num_batches_tracked")}, tmp_path / "model.safetensors")
    model = create_model("test_resnet", num_classes=2, weights=str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(model.state_dict()["conv1.0.weight"],
                               source.state_dict()["conv1.0.weight"])


def test_the_hugging_face_cache_is_used_offline(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants
    from safetensors.torch import save_file

    repo = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    commit = "0" * 40
    snapshot = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(commit)
    source = timm.create_model("test_resnet", num_classes=1000)
    save_file(source.state_dict(), snapshot / "model.safetensors")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    model = create_model("test_resnet", num_classes=4, pretrained=True)
    assert time.monotonic() - start < 10
    torch.testing.assert_close(model.state_dict()["conv1.0.weight"],
                               source.state_dict()["conv1.0.weight"])


@pytest.mark.parametrize("name", ["resnet18.a1_in1k", "deit_small_patch16_224.fb_in1k",
                                  "tf_efficientnet_lite0", "test_resnet"])
def test_data_config_is_timms_for_the_created_model(name: str) -> None:
    assert data_config(name) == timm.data.resolve_model_data_config(
        timm.create_model(name, num_classes=3))


def test_unknown_model_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="arch.model_name=resnet18.no_such_tag"):
        data_config("resnet18.no_such_tag")


def test_arch_configs_pin_the_pretrained_tags() -> None:
    from conftest import compose_train

    assert compose_train(["arch=resnet18"]).arch.model_name == "resnet18.a1_in1k"
    assert compose_train(["arch=deit_small"]).arch.model_name == "deit_small_patch16_224.fb_in1k"
