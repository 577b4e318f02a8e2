"""Walking a tree-sitter syntax tree: the nodes under a node, in document order."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tree_sitter import Node


def descendants(
    node: Node, *, named_only: bool = False, descend_into: Callable[[Node], bool] | None = None
) -> Iterator[Node]:
    """Every node under `node` (not `node` itself) in document order: each node before its own
    children, children left to right.

    `named_only` skips anonymous nodes (punctuation, keywords).
    `descend_into`, when given, is asked about each node yielded: the nodes under those it refuses
    are not visited (`node`'s own children always are)."""
    def children(parent: Node) -> list[Node]:
        return parent.named_children if named_only else parent.children

    stack = list(reversed(children(node)))
    while stack:
        current = stack.pop()
        yield current
        if descend_into is None or descend_into(current):
            stack.extend(reversed(children(current)))
