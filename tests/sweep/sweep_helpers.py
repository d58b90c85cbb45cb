"""Sweep test helpers: a sweep.toml writer for zoo:toy (tiny) and its INT8 calibration feeds (toy has no
calibration_feeds hook, so the sweep gets them as `export.calib = "calib.py:feeds"`)."""

from __future__ import annotations

from pathlib import Path

TOY = "zoo:toy?width=4,max_steps=4"

CALIB = '''
import numpy as np


def feeds():
    rng = np.random.default_rng(0)
    for i in range(8):
        yield {"image": rng.standard_normal((1, 3, 32, 32)).astype(np.float32),
               "threshold": np.array(-1.0 if i % 2 else 2.0, np.float32),
               "num_steps": np.array(1 + i % 4, np.int64)}
'''


def write_sweep(root: Path, axes: str, *, name: str = "sweep", extra: str = "") -> Path:
    """A sweep of zoo:toy (tiny) in `root` with a cache shared by every sweep written there."""
    (root / "calib.py").write_text(CALIB)
    path = root / f"{name}.toml"
    path.write_text(f'''
source = "{TOY}"
out = "{name}"
cache = "cache"
{extra}
[axes]
{axes}
[metric]
budget = 0.5
[export]
calib = "calib.py:feeds"
calib_samples = 8
samples = 2
[bench]
iters = 5
warmup = 1
''')
    return path
