"""A model's `validation_feeds()` kept in the export cache (`export/cache.py`): zoo:rbqe picks its
branch-driving thresholds by running every exit on demo images, which made it the slowest step of a
cached re-export. Keyed by the weights, the code of the model's package and the data/compute packages.
"""

from __future__ import annotations

from typing import Callable

FEED_PACKAGES = ("torch", "numpy", "scikit-image", "pillow")


def memo_feeds(module, compute: Callable[[], list[dict]]) -> list[dict]:
    """`compute()` (the hook's feeds as numpy), or the stored result for the same weights and code."""
    from edgekit.export.cache import Digest, ExportCache, module_files
    from edgekit.sources.model import state_sha256

    cache = ExportCache.open()
    if cache is None:
        return compute()
    digest = Digest("validation_feeds")
    digest.add(type(module).__qualname__, state_sha256(module))
    for path in sorted(module_files(module)):
        digest.add_file(path)
    digest.add_versions(FEED_PACKAGES)
    key = digest.hex()
    stored = cache.get_arrays("feeds", key)
    if stored is not None:
        return stored
    feeds = compute()
    cache.put_arrays("feeds", key, feeds)
    return feeds
