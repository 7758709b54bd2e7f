"""What Dynamo traced, for the tests of detloss under torch.compile."""

from __future__ import annotations

from torch._dynamo.testing import EagerAndRecordGraphs


def global_inputs(backend: EagerAndRecordGraphs) -> list[str]:
    """The inputs of the recorded graphs that Dynamo read from module globals (it names them
    ``g_...``). Under ``dynamic=True`` a float global, a constant of the library, becomes one: a
    tensor made on every call instead of a constant in the compiled code."""
    return [
        node.name
        for graph in backend.graphs
        for node in graph.graph.nodes
        if node.op == "placeholder" and node.name.startswith("g_")
    ]
