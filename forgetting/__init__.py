"""Which training samples a fine-tuned classifier forgets, how fast, and whether that is stable."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("forgetting")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
