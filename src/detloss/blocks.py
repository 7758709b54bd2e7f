"""Eager evaluation in blocks of rows.

A loss evaluated eagerly is a chain of element-wise passes, each writing a fresh tensor. On a CPU,
running the chain on blocks of rows keeps a block's temporaries in the caches and reuses their
memory, where whole-tensor temporaries each cost a pass over main memory and, when fresh, page
faults: blocks of 256k float32 elements (1 MB a temporary) measured fastest for the focal and IoU
losses on a 2-core CPU (64k: more Python overhead per element; 1M and whole tensors: the
temporaries go to memory). Other devices use blocks of 4M elements (few kernel launches).
Under ``torch.compile`` there are no blocks: inductor fuses the whole chain into a few loops.

Each block is its own set of operations, each parallelised over the torch threads: with other
processes on the same cores, every one of these short parallel regions can wait for a descheduled
thread, so on a busy CPU the blocked eager path slows down more than whole-tensor chains do
(``docs/benchmarks.md``).
"""

from __future__ import annotations

from torch import Tensor

from detloss.backend import is_compiling

BLOCK_ELEMENTS: dict[str, int] = {"cpu": 1 << 18}
"""Elements per eager block by device type; :data:`DEFAULT_BLOCK_ELEMENTS` for the others."""
DEFAULT_BLOCK_ELEMENTS: int = 1 << 22


def row_blocks(like: Tensor, row_elements: int) -> list[slice] | None:
    """Equal blocks of the rows (dim 0) of ``like``, each with at most the device's block size of
    elements counting ``row_elements`` per row; ``None`` when one block holds every row or under
    ``torch.compile``."""
    if is_compiling() or like.dim() == 0:
        return None
    block = BLOCK_ELEMENTS.get(like.device.type, DEFAULT_BLOCK_ELEMENTS)
    per_block = max(1, block // max(1, row_elements))
    rows = like.shape[0]
    if rows <= per_block:
        return None
    size = -(-rows // -(-rows // per_block))  # ceil(rows / number of blocks)
    return [slice(start, start + size) for start in range(0, rows, size)]
