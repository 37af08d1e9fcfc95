"""Corrupt or truncated images: an error naming the file, or left out and listed."""

from pathlib import Path

import pytest
from image_trees import make_cub, truncate

from forgetting.data import CorruptImageError
from forgetting.data.cub200 import load_cub200


@pytest.fixture
def cub_with_bad_images(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = make_cub(tmp_path / "data")
    images = root / "CUB_200_2011" / "images"
    truncated = truncate(images / "001.Black_footed_Albatross" / "Black_footed_Albatross_0001.jpg")
    garbage = images / "003.Sooty_Albatross" / "Sooty_Albatross_0006.jpg"
    garbage.write_bytes(b"this is not an image")
    return root, truncated, garbage


def test_a_corrupt_image_is_named_when_it_is_read(cub_with_bad_images: tuple) -> None:
    root, truncated, garbage = cub_with_bad_images
    data = load_cub200(str(root), image_size=8)
    with pytest.raises(CorruptImageError) as err:
        data.train_eval[0]
    assert str(truncated) in str(err.value) and "dataset.skip_corrupt=true" in str(err.value)
    with pytest.raises(CorruptImageError, match="Sooty_Albatross_0006.jpg"):
        data.test[2]  # test ids 4, 5, 6, ...


@pytest.mark.parametrize("cache", [False, True])
def test_skip_corrupt_leaves_the_images_out_and_lists_them(
        cub_with_bad_images: tuple, tmp_path: Path, cache: bool) -> None:
    root, truncated, garbage = cub_with_bad_images
    data = load_cub200(str(root), image_size=8, skip_corrupt=True, cache=cache,
                       cache_dir=str(tmp_path / "cache"))
    assert "1" not in data.sample_keys.tolist() and len(data.sample_keys) == 8
    assert len(data.test) == 5
    listed = {(e["split"], e["key"], e["file"]) for e in data.excluded}
    assert listed == {("train", "1", str(truncated)), ("test", "6", str(garbage))}
    assert all("cannot decode" in e["error"] for e in data.excluded)
    assert data.split["n_excluded"] == 2
    for split in (data.train, data.train_eval, data.test):
        for i in range(len(split)):
            split[i]
    if cache:  # a cache built with skip_corrupt still refuses the files without it
        with pytest.raises(CorruptImageError, match="Black_footed_Albatross_0001.jpg"):
            load_cub200(str(root), image_size=8, cache=True, cache_dir=str(tmp_path / "cache"))
