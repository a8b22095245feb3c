"""Key/value states that grow in place: decoding appends a token without copying the cache.

transformers' ``DynamicLayer`` appends each pass's states with ``torch.cat``,
so every decoding pass copies the whole key/value cache of every row: on the
bundled 135M model with 3 rows of ~370-token prompts, ``aten::cat`` was 28%
of a pass (``torch.profiler``). A ``RoomyLayer`` keeps its states in buffers
with spare positions and writes a pass's states into them; ``keys`` and
``values`` are views of the filled part, so the model reads exactly what a
``DynamicLayer`` would hand it. When the room runs out the buffers grow by a
quarter (one copy every so many tokens, not one a pass).

Anything that replaces ``keys``/``values`` with tensors of its own (merging
rows, cutting rows, trimming padding, ``crop``) is safe: the layer writes in
place only while ``keys``/``values`` are still the very views it made last,
and only past every position it ever wrote; otherwise it copies into new
buffers. So it never writes over states a view handed out earlier holds.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicLayer

MIN_SPARE = 64
"""Positions added at least when a layer's buffers grow."""


def spare(length: int) -> int:
    """Return the free positions to reserve beyond ``length`` filled ones."""
    return max(MIN_SPARE, length // 4)


class RoomyLayer(DynamicLayer):  # type: ignore[no-untyped-call]  # transformers: untyped
    """A ``DynamicLayer`` whose states are views of larger buffers, appended in place."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.room: tuple[Any, Any] | None = None
        """The key and value buffers ``keys`` and ``values`` are views of."""
        self.filled = 0
        """Positions of ``room`` written so far (never written again)."""

    @classmethod
    def of(cls, layer: DynamicLayer) -> RoomyLayer:
        """Return a roomy layer holding ``layer``'s states (shared until the first append)."""
        roomy = cls()
        roomy.__dict__.update({k: v for k, v in vars(layer).items() if k not in ("room", "filled")})
        return roomy

    def owns(self) -> bool:
        """Whether ``keys`` and ``values`` are still the views of ``room`` this layer made last."""
        if self.room is None or self.keys is None or self.values is None:
            return False
        return all(
            view.shape[-2] == self.filled
            and view.data_ptr() == buffer.data_ptr()
            and view.shape[:2] == buffer.shape[:2]
            and view.shape[-1] == buffer.shape[-1]
            and view.stride() == buffer.stride()
            for view, buffer in zip((self.keys, self.values), self.room, strict=True)
        )

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
        """Append a pass's states in place (growing the buffers when full); return all states."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        total = length + key_states.shape[-2]
        if not self.owns() or self.room is None or total > self.room[0].shape[-2]:
            self.room = (
                grown(self.keys, key_states, length, total + spare(total)),
                grown(self.values, value_states, length, total + spare(total)),
            )
        keys, values = self.room
        keys[:, :, length:total].copy_(key_states)
        values[:, :, length:total].copy_(value_states)
        self.keys, self.values = keys[:, :, :total], values[:, :, :total]
        self.filled = total
        return self.keys, self.values


def grown(states: Any, new: Any, length: int, capacity: int) -> Any:
    """Return a buffer of ``capacity`` positions shaped like ``new``, ``states`` copied first."""
    import torch

    shape = list(new.shape)
    shape[-2] = capacity
    buffer = torch.empty(shape, dtype=new.dtype, device=new.device)
    if length:
        buffer[:, :, :length].copy_(states)
    return buffer


def roomy(cache: Any) -> Any:
    """Turn a cache's ``DynamicLayer``s (exactly that type) into ``RoomyLayer``s, in place."""
    layers = getattr(cache, "layers", None)
    if layers:
        for i, layer in enumerate(layers):
            if type(layer) is DynamicLayer:
                layers[i] = RoomyLayer.of(layer)
    return cache
