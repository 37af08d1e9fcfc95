"""Progress bars that stay quiet in CI, in pipes and when FORGETTING_QUIET is set."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet() -> bool:
    """True when stderr is not a terminal, or in CI, or when FORGETTING_QUIET=1."""
    if os.environ.get("FORGETTING_QUIET", "0") not in ("", "0") or os.environ.get("CI"):
        return True
    return not sys.stderr.isatty()


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    return tqdm(iterable, disable=quiet(), dynamic_ncols=True, **kwargs)
