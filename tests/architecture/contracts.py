"""An import-linter contract type the built-in ones lack: no import circle between any two modules.

``acyclic_siblings`` looks at the children of one package at a time; a circle that runs through
modules of different packages (outbox.registry -> authority.tasks -> outbox.registry) shows there
only as a circle between packages, which the project cannot yet forbid everywhere. This contract
reads the module graph itself, lazy imports included, and names every circle it finds.
"""
from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    containers = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:  # noqa: ANN001 - grimp's ImportGraph
        containers = list(self.containers)  # type: ignore[arg-type]
        modules = sorted(m for m in graph.modules if any(m == c or m.startswith(c + ".") for c in containers))
        inside = set(modules)
        edges = {m: sorted(graph.find_modules_directly_imported_by(m) & inside) for m in modules}
        circles = [sorted(component) for component in _strongly_connected(modules, edges) if len(component) > 1]
        return ContractCheck(kept=not circles, metadata={"circles": circles, "edges": edges})

    def render_broken_contract(self, check: ContractCheck) -> None:
        edges = check.metadata["edges"]
        for circle in check.metadata["circles"]:
            members = set(circle)
            output.print_error(f"Import circle between {len(circle)} modules:")
            for module in circle:
                for imported in edges[module]:
                    if imported in members:
                        output.print_error(f"    {module} -> {imported}", bold=False)
            output.new_line()


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is deep enough to hit Python's recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(edges[successor])))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components
