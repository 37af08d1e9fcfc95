"""The decoded cache gives exactly the uncached eval tensors, is reused, is written atomically."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from image_trees import make_cub, truncate

from forgetting.data import CorruptImageError
from forgetting.data.cache import DecodedImages, decode_all
from forgetting.data.cub200 import load_cub200
from forgetting.data.digits import load_digits
from forgetting.data.images import ImageFiles
from forgetting.models import data_config

CONFIG = data_config("resnet18.a1_in1k")


def eval_tensors(data) -> list[torch.Tensor]:  # noqa: ANN001
    return [x for split in (data.train_eval, data.test) for x, _, _ in split]


@pytest.fixture
def cub(tmp_path: Path) -> Path:
    return make_cub(tmp_path / "data")


def test_cached_and_uncached_pipelines_give_identical_eval_tensors(cub: Path,
                                                                  tmp_path: Path) -> None:
    common = {"image_size": 12, "data_config": CONFIG, "crop_to_bbox": True}
    plain = eval_tensors(load_cub200(str(cub), **common))
    on_disk = eval_tensors(load_cub200(str(cub), cache=True, cache_dir=str(tmp_path / "c"),
                                       **common))
    in_memory = eval_tensors(load_cub200(str(cub), cache=True, cache_in_memory=True, **common))
    assert len(plain) == 15
    for a, b, c in zip(plain, on_disk, in_memory, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    files = sorted(p.name for p in (tmp_path / "c" / "cub200").iterdir())
    assert [f.split("-")[:2] for f in files if f.endswith(".npy")] == [["test", "12px"],
                                                                       ["train", "12px"]]
    assert not [f for f in files if "tmp" in f]


def test_a_complete_cache_file_is_reused_without_decoding(cub: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"image_size": 12, "cache": True, "cache_dir": str(tmp_path / "c")}
    first = load_cub200(str(cub), **options)
    built = {p: p.stat().st_mtime_ns for p in (tmp_path / "c").rglob("*.npy")}

    def no_decoding(self: ImageFiles, position: int) -> None:
        raise AssertionError("decoded an image although the cache is complete")

    monkeypatch.setattr(ImageFiles, "open", no_decoding)
    second = load_cub200(str(cub), **options)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "c").rglob("*.npy")} == built
    assert all(torch.equal(a, b) for a, b in zip(eval_tensors(first), eval_tensors(second),
                                                 strict=True))
    train_view = second.train[0][0]
    assert train_view.dtype == torch.uint8 and train_view.shape == (3, 12, 12)


def test_the_key_changes_with_the_size_and_the_files(cub: Path, tmp_path: Path) -> None:
    options = {"cache": True, "cache_dir": str(tmp_path / "c")}
    load_cub200(str(cub), image_size=12, **options)
    load_cub200(str(cub), image_size=10, **options)
    image = sorted((cub / "CUB_200_2011" / "images").rglob("*.jpg"))[0]
    image.write_bytes(image.read_bytes())  # same bytes, new mtime: the image may have changed
    load_cub200(str(cub), image_size=12, **options)
    names = [p.name for p in (tmp_path / "c" / "cub200").glob("*.npy")]
    assert sorted(n.split("-")[1] for n in names) == ["10px", "10px", "12px", "12px", "12px"]


def test_a_failed_build_leaves_no_file(cub: Path, tmp_path: Path) -> None:
    images = cub / "CUB_200_2011" / "images" / "001.Black_footed_Albatross"
    truncate(images / "Black_footed_Albatross_0001.jpg")  # a training image
    with pytest.raises(CorruptImageError, match=r"Black_footed_Albatross_0001\.jpg"):
        load_cub200(str(cub), image_size=12, cache=True, cache_dir=str(tmp_path / "c"))
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]


def test_decoded_images_pickle_by_path(tmp_path: Path) -> None:
    images = np.arange(4 * 5 * 5 * 3, dtype=np.uint8).reshape(4, 5, 5, 3)
    decoded = decode_all(images.__getitem__, 4, (5, 5, 3), skip_failed=False,
                         file=tmp_path / "x.npy")
    np.testing.assert_array_equal(decoded[2], images[2])
    clone = pickle.loads(pickle.dumps(decoded))
    assert len(pickle.dumps(decoded)) < images.nbytes and isinstance(clone, DecodedImages)
    np.testing.assert_array_equal(clone[3], images[3])


def test_digits_cache_stores_the_upscaled_images_as_uint8(tmp_path: Path) -> None:
    plain = load_digits(image_size=16)
    cached = load_digits(image_size=16, cache=True, cache_dir=str(tmp_path))
    x, y = plain.test[5][0], cached.test[5][0]
    assert y.dtype == torch.uint8 and (tmp_path / "digits" / "all-16px.npy").is_file()
    assert torch.equal((x * 255).round().to(torch.uint8), y)
    np.testing.assert_array_equal(plain.sample_keys, cached.sample_keys)
