"""Run-time policy (`edgekit tune`): knobs.py (the scalar inputs that trade quality for compute, declared by
a model's `tuning_knobs()` hook), search.py (every setting run and timed on the bundle's runtime, the
cheapest one within a quality budget), stage.py (data, re-validation, the manifest's `tuning` block).
Import from the modules."""
