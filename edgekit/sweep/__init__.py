"""`edgekit sweep`: export, validate and benchmark every combination of density × precision × runtime ×
shape × feeds × device of one model, reusing shared stages through a content-hash cache, locally or on a
Ray cluster; report the Pareto front (latency vs metric) and the variant to ship per device.

config.py (sweep.toml) → plan.py (task graph) → executors.py (process pool | Ray) running stages.py
(one cell's stages, cache.py) → run.py (SweepResult) → report.py (table, Pareto, JSON/Markdown/plot).
"""

from edgekit.sweep.config import ConfigError, SweepConfig, load_config
from edgekit.sweep.report import CellResult, SweepResult, pareto_front
from edgekit.sweep.run import run_sweep

__all__ = ["CellResult", "ConfigError", "SweepConfig", "SweepResult", "load_config", "pareto_front", "run_sweep"]
