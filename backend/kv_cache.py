"""A KV cache layer with room to grow, so a decode step appends in place.

transformers' DynamicLayer appends each new token with torch.cat, which copies the whole
cache of every layer at every step; with 16 rows of a few hundred tokens on a CPU that
copying is a noticeable share of a step. This layer keeps keys and values in a buffer
with spare room along the sequence axis and writes the new token into it; the buffer is
copied only when it fills (its size then grows by half). `keys`/`values` read as the used
part; assigning them (as batch_select_indices and the engine's merge and trim do) replaces
the buffer with exactly that tensor.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

_MIN_SPARE = 64


class GrowingLayer(DynamicLayer):
    def __init__(self, **kwargs) -> None:
        self._key_buffer = self._value_buffer = None
        self._length = self._value_length = 0  # tracked apart so keys and values can be assigned in any order
        super().__init__(**kwargs)

    @property
    def keys(self) -> torch.Tensor | None:
        return None if self._key_buffer is None else self._key_buffer[:, :, :self._length]

    @keys.setter
    def keys(self, tensor: torch.Tensor | None) -> None:
        self._key_buffer = tensor
        self._length = 0 if tensor is None else tensor.shape[-2]

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._value_buffer is None else self._value_buffer[:, :, :self._value_length]

    @values.setter
    def values(self, tensor: torch.Tensor | None) -> None:
        self._value_buffer = tensor
        self._value_length = 0 if tensor is None else tensor.shape[-2]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, end = self._length, self._length + key_states.shape[-2]
        if self._key_buffer is None or end > self._key_buffer.shape[-2]:
            capacity = end + max(_MIN_SPARE, end // 2)
            self._key_buffer = _regrow(self._key_buffer, key_states, start, capacity)
            self._value_buffer = _regrow(self._value_buffer, value_states, start, capacity)
        self._key_buffer[:, :, start:end] = key_states
        self._value_buffer[:, :, start:end] = value_states
        self._length = self._value_length = end
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length


def _regrow(buffer: torch.Tensor | None, like: torch.Tensor, used: int, capacity: int) -> torch.Tensor:
    batch, heads, _, dim = like.shape
    grown = like.new_empty(batch, heads, capacity, dim)
    if buffer is not None and used:
        grown[:, :, :used] = buffer[:, :, :used]
    return grown


def growing_cache(opening: list[tuple[torch.Tensor, torch.Tensor]] | None = None, rows: int = 1):
    """A cache of GrowingLayers; ``opening`` (per layer: keys and values of one row, [1, heads,
    seq, dim]) starts every one of ``rows`` rows with the same computed prompt opening."""
    from transformers import DynamicCache

    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    for keys, values in opening or ():
        layer = GrowingLayer()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1)
        cache.layers.append(layer)
    return cache
