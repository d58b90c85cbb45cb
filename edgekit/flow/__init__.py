"""edgekit.flow — building blocks that give your own network early exits and iterative samplers that
survive export (DESIGN.md §6): `exit_chain` (nested `torch.cond` → nested ONNX `If`) and `sampler` (one
`while_loop` → one ONNX `Loop`). Both return modules carrying the hooks `edgekit export` reads, so
`edgekit export file.py:build` validates every exit and step count with no flags.

Importing this package imports torch (it is for model code; `import edgekit` stays light).
"""

from edgekit.flow.exits import ExitChain, exit_chain
from edgekit.flow.sampler import Sampler, sampler
from edgekit.flow.scores import entropy_confidence, max_softmax

__all__ = ["ExitChain", "Sampler", "entropy_confidence", "exit_chain", "max_softmax", "sampler"]
