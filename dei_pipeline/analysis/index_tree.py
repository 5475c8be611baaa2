"""The framework tree as index arrays, and the segments of consecutive aggregation steps that share a
method (applied as one weighted mean with "path weights"): the layout the vectorised Monte Carlo runs on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from dei_pipeline.aggregation import COMPOSITE_CODE


@dataclass(frozen=True)
class IndexTree:
    """A framework tree as index arrays, for vectorised aggregation (any depth, leaves at any level)."""

    node_codes: tuple[str, ...]
    node_levels: np.ndarray  # (nodes,) level of each node, 1 = top
    node_parents: (
        np.ndarray
    )  # (nodes,) position of the parent, -1 for a level-1 node (child of the composite)
    node_is_leaf: np.ndarray  # (nodes,) bool
    nominal_weights: np.ndarray  # (nodes,) weight within the parent
    sibling_membership: np.ndarray  # (nodes, parents) 1 where the node is a child of the parent
    sibling_group: np.ndarray  # (nodes,) column of the node's parent in sibling_membership
    leaf_codes: tuple[str, ...]

    @property
    def n_nodes(self) -> int:
        return len(self.node_codes)

    @property
    def depth(self) -> int:
        return int(self.node_levels.max())

    @property
    def n_steps(self) -> int:
        """Aggregation steps: level ``depth`` into ``depth - 1``, ..., level 1 into the composite."""
        return self.depth

    @classmethod
    def from_nodes(cls, nodes: pl.DataFrame) -> IndexTree:
        """Build from a framework's node table (code, parent_code, level, weight, is_leaf)."""
        codes: list[str] = nodes["code"].to_list()
        position = {code: i for i, code in enumerate(codes)}
        parents = [position[p] if p else -1 for p in nodes["parent_code"].to_list()]
        is_leaf = np.array(nodes["is_leaf"].to_list(), dtype=bool)
        groups = [-1, *np.flatnonzero(~is_leaf).tolist()]  # the composite, then every inner node
        group_of = {node: column for column, node in enumerate(groups)}
        sibling_group = np.array([group_of[p] for p in parents], dtype=np.intp)
        membership = np.zeros((len(codes), len(groups)))
        membership[np.arange(len(codes)), sibling_group] = 1.0
        return cls(
            node_codes=tuple(codes),
            node_levels=np.array(nodes["level"].to_list(), dtype=np.int64),
            node_parents=np.array(parents, dtype=np.intp),
            node_is_leaf=is_leaf,
            nominal_weights=np.array(nodes["weight"].to_list(), dtype=np.float64),
            sibling_membership=membership,
            sibling_group=sibling_group,
            leaf_codes=tuple(code for code, leaf in zip(codes, is_leaf) if leaf),
        )

    def inner_nodes_at(self, level: int) -> list[int]:
        """Positions of the nodes that have children at a level; level 0 is the composite (-1)."""
        if level == 0:
            return [-1]
        return np.flatnonzero((self.node_levels == level) & ~self.node_is_leaf).tolist()

    def ancestor_at(self, node: int, level: int) -> int:
        while node != -1 and self.node_levels[node] > level:
            node = int(self.node_parents[node])
        return node


@dataclass(frozen=True)
class InputGroup:
    """The inputs of one output node of a segment."""

    output: int  # row of the output among the segment's outputs
    inputs: np.ndarray  # rows of the inputs in the segment's path table
    sources: np.ndarray  # leaf columns (leaf inputs) or rows of the previous segment's output (inner inputs)
    source_slice: slice | None = None  # the same rows as a slice when consecutive (a view, not a copy)


@dataclass(frozen=True)
class Segment:
    """Consecutive aggregation steps that use the same method, applied as one weighted mean.

    A run of arithmetic steps is linear in the values, a run of geometric steps linear in the logs, so
    the run maps its inputs to its outputs with "path weights": the product of the (renormalised)
    weights from an input up to, not including, its output. The inputs are the leaves of the levels
    the run spans and, above the first run, the previous run's outputs.
    """

    output_codes: tuple[str, ...]
    paths: (
        np.ndarray
    )  # (inputs, longest path) node positions from an input upwards; padded with n_nodes (weight 1)
    leaf_groups: tuple[InputGroup, ...]
    inner_groups: tuple[InputGroup, ...]


def build_segment(tree: IndexTree, first_step: int, last_step: int) -> Segment:
    """The segment of steps ``first_step..last_step`` (step 0 aggregates the deepest level)."""
    bottom = tree.depth - first_step  # deepest level of the inputs
    top = tree.depth - last_step - 1  # level of the outputs (0 = composite)
    outputs = tree.inner_nodes_at(top)
    output_row = {node: row for row, node in enumerate(outputs)}
    below_rows = {node: row for row, node in enumerate(tree.inner_nodes_at(bottom))} if first_step > 0 else {}
    leaf_column = {node: column for column, node in enumerate(np.flatnonzero(tree.node_is_leaf).tolist())}
    inputs = [
        node
        for node in range(tree.n_nodes)
        if top < tree.node_levels[node] <= bottom
        and (tree.node_is_leaf[node] or (tree.node_levels[node] == bottom and first_step > 0))
    ]
    longest = bottom - top
    paths = np.full((len(inputs), longest), tree.n_nodes, dtype=np.intp)
    for row, node in enumerate(inputs):
        step = 0
        while node != -1 and tree.node_levels[node] > top:
            paths[row, step] = node
            node, step = int(tree.node_parents[node]), step + 1
    leaf_groups, inner_groups = [], []
    for output in outputs:
        mine = [row for row, node in enumerate(inputs) if tree.ancestor_at(node, top) == output]
        leaves = [row for row in mine if tree.node_is_leaf[inputs[row]]]
        inner = [row for row in mine if not tree.node_is_leaf[inputs[row]]]
        if leaves:
            leaf_groups.append(
                InputGroup(
                    output_row[output], np.array(leaves), np.array([leaf_column[inputs[r]] for r in leaves])
                )
            )
        if inner:
            sources = np.array([below_rows[inputs[r]] for r in inner])
            consecutive = bool(np.all(np.diff(sources) == 1))
            inner_groups.append(
                InputGroup(
                    output_row[output],
                    np.array(inner),
                    sources,
                    slice(int(sources[0]), int(sources[-1]) + 1) if consecutive else None,
                )
            )
    return Segment(
        output_codes=tuple(COMPOSITE_CODE if node == -1 else tree.node_codes[node] for node in outputs),
        paths=paths,
        leaf_groups=tuple(leaf_groups),
        inner_groups=tuple(inner_groups),
    )


def method_segments(geometric_steps: Sequence[bool], merge: bool = True) -> list[tuple[int, int]]:
    """(first, last) steps of each run of equal methods; every step alone when ``merge`` is off."""
    runs: list[tuple[int, int]] = []
    for step, geometric in enumerate(geometric_steps):
        if merge and runs and geometric_steps[runs[-1][0]] == geometric:
            runs[-1] = (runs[-1][0], step)
        else:
            runs.append((step, step))
    return runs
