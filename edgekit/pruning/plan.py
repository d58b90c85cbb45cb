"""The pruning plan of a model (`plan_for`): its zoo recipe (recipes.py), else what its own hooks say
(hooks.py, where `PruningPlan` and `PRUNING_HOOKS` live).
"""

from __future__ import annotations

from edgekit.pruning.hooks import PruningPlan, plan_from_hooks
from edgekit.pruning.recipes import recipe_for


def plan_for(module, spec: str, example_inputs: tuple) -> PruningPlan:
    """The pruning plan of `module`: the zoo recipe, else the module's hooks. Raises EdgekitError for a
    model with control flow and no all-branches trace function."""
    recipe = recipe_for(module)
    if recipe is not None:
        return recipe
    return plan_from_hooks(module, spec, example_inputs)
