"""The asset graph of docs/architecture.md as Mermaid diagrams, made from the Dagster definitions
themselves (GitHub renders Mermaid in Markdown), so the picture cannot drift from the code."""

from __future__ import annotations

import graphlib
from collections import defaultdict
from dataclasses import dataclass

import dagster as dg

from dei_pipeline.docgen.generated_blocks import update_generated_sections

GENERATOR = "scripts/architecture_diagram.py"


@dataclass(frozen=True)
class AssetNode:
    name: str
    group: str
    parents: tuple[str, ...]


def asset_nodes(defs: dg.Definitions) -> list[AssetNode]:
    """Every asset with its group and upstream assets, in dependency order (ties by name)."""
    graph = defs.resolve_asset_graph()
    nodes = {
        n.key.to_user_string(): AssetNode(
            n.key.to_user_string(),
            n.group_name or "default",
            tuple(sorted(k.to_user_string() for k in n.parent_keys)),
        )
        for n in graph.asset_nodes
    }
    # In waves: each wave is what its predecessors made ready, sorted by name.
    sorter = graphlib.TopologicalSorter(
        {name: [p for p in node.parents if p in nodes] for name, node in nodes.items()}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        raise ValueError(f"the asset graph has a cycle: {' -> '.join(error.args[1])}") from None
    ordered: list[AssetNode] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered += [nodes[name] for name in ready]
        sorter.done(*ready)
    return ordered


def _group_order(nodes: list[AssetNode]) -> list[str]:
    return list(dict.fromkeys(node.group for node in nodes))


def group_flow_mermaid(nodes: list[AssetNode]) -> str:
    """Groups as boxes listing their assets; an arrow where an asset of one group reads one of another."""
    by_group: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        by_group[node.group].append(node.name)
    group_of = {node.name: node.group for node in nodes}
    flows = sorted(
        {
            (group_of[parent], node.group)
            for node in nodes
            for parent in node.parents
            if parent in group_of and group_of[parent] != node.group
        }
    )
    lines = ["```mermaid", "flowchart LR"]
    for group in _group_order(nodes):
        lines.append(f'  g_{group}["<b>{group}</b><br/>{"<br/>".join(by_group[group])}"]')
    lines += [f"  g_{source} --> g_{target}" for source, target in flows]
    lines.append("```")
    return "\n".join(lines)


def asset_graph_mermaid(nodes: list[AssetNode]) -> str:
    """Every asset inside its group's box, and every dependency."""
    names = {node.name for node in nodes}
    lines = ["```mermaid", "flowchart LR"]
    for group in _group_order(nodes):
        lines.append(f"  subgraph g_{group} [{group}]")
        lines += [f"    a_{node.name}[{node.name}]" for node in nodes if node.group == group]
        lines.append("  end")
    lines += [
        f"  a_{parent} --> a_{node.name}" for node in nodes for parent in node.parents if parent in names
    ]
    lines.append("```")
    return "\n".join(lines)


def generated_sections(defs: dg.Definitions) -> dict[str, str]:
    nodes = asset_nodes(defs)
    return {"asset-groups": group_flow_mermaid(nodes), "asset-graph": asset_graph_mermaid(nodes)}


def update_architecture(document: str, sections: dict[str, str]) -> str:
    """docs/architecture.md with its generated blocks replaced by ``sections``."""
    return update_generated_sections(document, sections, GENERATOR)
