"""A bounded cache of key/value states keyed by token prefix, shared by every call of one model.

Calls of a local model repeat long prefixes: a role's system prompt at every
step, the memory across a step's calls (``prompt_order="memory-first"``), the
whole h_0 prompt of choice mode's lift at every step of every sequence (only
the input differs). ``Prefixes`` keeps the key/value states of the prompts
already run, so a call prefills only the part no cached prefix covers
(``runtime.prefill``).

Granularity: a radix tree of token runs (SGLang's RadixAttention), not blocks
of N tokens (vLLM's automatic prefix caching). A block cache reuses only
whole blocks, so up to N - 1 tokens of every hit are run again, and the part
that differs between our calls is short (the h_0 prompt differs from one
step to the next by an input of a few dozen tokens); blocks pay off on a GPU,
where they are also the allocator's unit, which a CPU tensor per node does not
need. A tree reuses a prefix to the token and stores what two prompts share
once: a node holds the states of its own run of tokens, a prompt is the path
from the root, and a new prompt that leaves a node midway splits it.

Bounds: the bytes of the tree's tensors never exceed ``capacity``. Room is
made by dropping the least recently used leaves (a node's prefix is at least
as recent as its extensions, so leaves go first and a path never has a
hole); a prompt whose new part does not fit even then is not stored. A
caller gets fresh tensors (``lookup`` concatenates), and the tree stores its
own copies (``add`` clones), so a forward pass never changes an entry.

Only a plain cache (one growing key and value tensor per layer) can be cut
and stacked this way; ``runtime.prefill`` stores nothing for other models.
All of it runs on the torch thread (``runtime.local``): no locks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_as_rnn.runtime.engine import count_from_env

PREFIX_CACHE_ENV = "LLM_AS_RNN_PREFIX_CACHE_MB"
DEFAULT_PREFIX_CACHE_MB = 256
"""About 5,800 tokens of the bundled model's states (46,080 bytes a token: 30 layers x keys
and values x 3 heads x 64 dimensions x 4 bytes): every role's system prompt, h_0 and the
memories of a full batch (``LLM_AS_RNN_LOCAL_BATCH``, 8 rows), beside a model of 540 MB."""

Layers = tuple[tuple[Any, Any], ...]
"""One row's states: per layer, keys and values shaped ``(1, heads, tokens, dims)``."""


def prefix_cache_bytes() -> int:
    """Return the cache's size in bytes: ``LLM_AS_RNN_PREFIX_CACHE_MB`` (default 256; 0 = off)."""
    megabytes = count_from_env(
        PREFIX_CACHE_ENV, DEFAULT_PREFIX_CACHE_MB, minimum=0, meaning="megabytes; 0 turns it off"
    )
    return megabytes * 2**20


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Return the length of the longest token prefix every row shares."""
    if not rows:
        return 0
    shortest = min(len(r) for r in rows)
    for i in range(shortest):
        token = rows[0][i]
        if any(r[i] != token for r in rows[1:]):
            return i
    return shortest


def tokens_of(layers: Layers) -> int:
    """Return how many tokens ``layers`` hold."""
    return int(layers[0][0].shape[-2]) if layers else 0


def cut(layers: Layers, start: int, end: int | None = None) -> Layers:
    """Return the states of tokens ``start:end`` as tensors of their own."""
    return tuple((k[..., start:end, :].clone(), v[..., start:end, :].clone()) for k, v in layers)


def nbytes(layers: Layers) -> int:
    """Return the bytes of ``layers``' tensors."""
    return sum(int(k.nbytes) + int(v.nbytes) for k, v in layers)


@dataclass(frozen=True)
class Hit:
    """The states of a prompt's longest cached prefix (fresh tensors: the caller's to keep)."""

    length: int
    layers: Layers = ()


MISS = Hit(0)


@dataclass(eq=False)
class Node:
    """A run of tokens and their states, continuing its parent's."""

    tokens: tuple[int, ...]
    layers: Layers = ()
    parent: Node | None = None
    children: dict[int, Node] = field(default_factory=dict)
    """Each child by its first token."""
    used: int = 0
    """The cache's clock when a lookup or an insertion last went through it."""


class Prefixes:
    """Key/value states of the prompts run so far, at most ``capacity`` bytes (0: off)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.root = Node(())
        self.size = 0
        """The bytes held now."""
        self.peak = 0
        """The most bytes ever held."""
        self.clock = 0

    def clear(self) -> None:
        """Drop every entry (``peak`` stays: the most ever held)."""
        self.root.children.clear()
        self.size = 0

    def path(self, ids: Sequence[int]) -> list[tuple[Node, int]]:
        """Return the nodes ``ids`` run through, each with how many of its tokens match."""
        node, depth, path = self.root, 0, []
        while depth < len(ids) and (child := node.children.get(ids[depth])) is not None:
            matched = common_prefix([child.tokens, ids[depth : depth + len(child.tokens)]])
            path.append((child, matched))
            depth += matched
            if matched < len(child.tokens):
                break
            node = child
        return path

    def touch(self, nodes: Sequence[Node]) -> None:
        """Mark ``nodes`` as just used."""
        self.clock += 1
        for node in nodes:
            node.used = self.clock

    def lookup(self, ids: Sequence[int], limit: int) -> Hit:
        """Return the states of the longest cached prefix of ``ids[:limit]``."""
        import torch

        path = self.path(ids[: max(limit, 0)]) if self.capacity else []
        if not path:
            return MISS
        self.touch([node for node, _ in path])

        def joined(layer: int, part: int) -> Any:
            return torch.cat([n.layers[layer][part][..., :m, :] for n, m in path], dim=-2)

        layers = tuple((joined(i, 0), joined(i, 1)) for i in range(len(path[0][0].layers)))
        return Hit(sum(m for _, m in path), layers)

    def add(self, ids: Sequence[int], layers: Layers) -> None:
        """Store the states of prompt ``ids`` (``layers`` hold all its tokens), if they fit."""
        if not self.capacity or not ids:
            return
        path = self.path(ids)
        depth = sum(m for _, m in path)
        nodes = [node for node, _ in path]
        new = nbytes(layers) // max(tokens_of(layers), 1) * (len(ids) - depth)
        if depth < len(ids) and self.make_room(new, nodes):
            parent = self.root
            if path:
                last, matched = path[-1]
                parent = last if matched == len(last.tokens) else self.split(last, matched)
            leaf = Node(tuple(ids[depth:]), cut(layers, depth), parent)
            parent.children[ids[depth]] = leaf
            self.size += nbytes(leaf.layers)
            self.peak = max(self.peak, self.size)
            nodes.append(leaf)
        self.touch(nodes)

    def make_room(self, needed: int, keep: Sequence[Node]) -> bool:
        """Drop least recently used leaves, never ``keep``, until ``needed`` bytes fit."""
        kept = sum(nbytes(n.layers) for n in keep)  # everything else can go, leaf by leaf
        if kept + needed > self.capacity:
            return False
        while self.size + needed > self.capacity:
            leaves = [n for n in self.nodes() if not n.children and n not in keep]
            self.drop(min(leaves, key=lambda n: n.used))
        return True

    def split(self, node: Node, at: int) -> Node:
        """Cut ``node`` after ``at`` tokens; return the new node holding the first part."""
        assert node.parent is not None  # the root has no tokens to split
        head = Node(node.tokens[:at], cut(node.layers, 0, at), node.parent, used=node.used)
        node.parent.children[node.tokens[0]] = head
        node.tokens, node.layers, node.parent = node.tokens[at:], cut(node.layers, at), head
        head.children[node.tokens[0]] = node
        return head

    def drop(self, leaf: Node) -> None:
        """Remove a leaf."""
        assert leaf.parent is not None
        del leaf.parent.children[leaf.tokens[0]]
        self.size -= nbytes(leaf.layers)

    def nodes(self) -> Iterator[Node]:
        """Yield every node but the root."""
        stack = list(self.root.children.values())
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())
