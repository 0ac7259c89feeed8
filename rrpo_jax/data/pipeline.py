"""The resumable, sharded input pipeline: examples -> host-local batches of examples + arrays.

Order: epoch e visits the examples in the permutation rng([seed, e]) (or source order with
shuffle=False). Global batch s of an epoch is positions [s*B, (s+1)*B) of that order; process p
takes the contiguous slice [p*b, (p+1)*b) with b = B / process_count, and its devices split that
slice evenly. So each example appears exactly once per epoch over all processes and devices. The
last global batch is padded with masked queries (query_mask False, where False) so shapes never
change; drop_remainder=True drops it instead (documented loss of < B examples per epoch).
The position (epoch, step) is the whole iterator state: state() / restore() put it in checkpoints
and a resumed run continues on the same next batch.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from rrpo_jax.data.example import Example

EncodeFn = Callable[[list[Example]], dict[str, np.ndarray]]


def make_encode_fn(encoder, *, n: int) -> EncodeFn:
  """Adapts a tokenization.PairEncoder: examples -> encoder.encode(questions, passages, n=n)."""

  def encode(examples: list[Example]) -> dict[str, np.ndarray]:
    return encoder.encode(
        [e.question for e in examples], [[(c.title, c.text) for c in e.candidates[:n]] for e in examples], n=n
    )

  return encode


def _as_example(item: Any) -> Example:
  if isinstance(item, Example):
    return item
  if isinstance(item, dict):  # a TFDS record
    from rrpo_jax.data.tfds_builder import from_record

    return from_record(item)
  raise TypeError(f"source items must be Example or TFDS record dicts, got {type(item).__name__}")


class Loader:
  """Deterministic, resumable, sharded batches.

  Each batch (host-local, b = batch_size / process_count queries) is a dict:
    examples      list[Example] of length b, candidates cut to the first n (padding rows repeat a
                  real example: skip them with query_mask, e.g. make no reader calls for them)
    index         int64[b]    position of the example in the source, -1 for padding
    query_mask    bool[b]     False for padding queries
    where         bool[b, n]  candidate exists (all False on padding rows)
    has_answer    bool[b, n]; is_supporting int8[b, n] (1 / 0, -1 where the dataset has no label)
    ...           whatever encode_fn returns (e.g. input_ids, attention_mask, token_type_ids
                  int32[b, n, L]); its own `where` is and-ed with the one above.
  """

  def __init__(
      self,
      source: Sequence,
      encode_fn: EncodeFn | None = None,
      *,
      batch_size: int,
      n: int,
      seed: int = 0,
      process_index: int = 0,
      process_count: int = 1,
      local_device_count: int = 1,
      shuffle: bool = True,
      num_epochs: int | None = None,
      drop_remainder: bool = False,
      prefetch: int = 0,
  ):
    if batch_size % process_count:
      raise ValueError(f"batch_size {batch_size} is not divisible by process_count {process_count}")
    if (batch_size // process_count) % local_device_count:
      raise ValueError(
          f"per-process batch {batch_size // process_count} is not divisible by "
          f"local_device_count {local_device_count}"
      )
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    if len(source) == 0:
      raise ValueError("empty source: no examples to load")
    if n < 1:
      raise ValueError(f"n must be >= 1, got {n}")
    self.source, self.encode_fn, self.n = source, encode_fn, n
    self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
    self.process_index, self.process_count = process_index, process_count
    self.local_batch_size = batch_size // process_count
    self.num_epochs, self.drop_remainder, self.prefetch = num_epochs, drop_remainder, prefetch
    self.size = len(source)
    self.epoch, self.step = 0, 0
    self._order_cache: tuple[int, np.ndarray] | None = None

  # --- position -----------------------------------------------------------------------------
  @property
  def steps_per_epoch(self) -> int:
    full, rest = divmod(self.size, self.batch_size)
    return full + (1 if rest and not self.drop_remainder else 0)

  def __len__(self) -> int:
    """Batches per epoch (for progress bars)."""
    return self.steps_per_epoch

  def state(self) -> dict[str, int]:
    """The position of the next batch, for checkpoints (plain ints)."""
    return {"seed": self.seed, "epoch": self.epoch, "step": self.step, "size": self.size, "batch_size": self.batch_size}

  def restore(self, state: dict[str, Any]) -> None:
    """Continues from a saved position; the data, seed and batch size must be the same."""
    state = {k: int(v) for k, v in state.items()}
    for key in ("seed", "size", "batch_size"):
      if key in state and state[key] != getattr(self, key):
        raise ValueError(
            f"cannot restore: saved {key}={state[key]} but this loader has "
            f"{key}={getattr(self, key)} (the order would differ)"
        )
    if not 0 <= state["step"] <= self.steps_per_epoch:
      raise ValueError(f"cannot restore: step {state['step']} outside [0, {self.steps_per_epoch}]")
    self.epoch, self.step = state["epoch"], state["step"]

  # --- batches ------------------------------------------------------------------------------
  def order(self, epoch: int) -> np.ndarray:
    """The source positions in the order epoch `epoch` visits them."""
    if self._order_cache is None or self._order_cache[0] != epoch:
      order = np.random.default_rng([self.seed, epoch]).permutation(self.size) if self.shuffle else np.arange(self.size)
      self._order_cache = (epoch, order)
    return self._order_cache[1]

  def indices(self, epoch: int, step: int) -> np.ndarray:
    """int64[b]: this process's source positions for global batch `step` of `epoch` (-1: padding)."""
    order = self.order(epoch)
    start = step * self.batch_size + self.process_index * self.local_batch_size
    pos = np.arange(start, start + self.local_batch_size)
    return np.where(pos < self.size, order[np.minimum(pos, self.size - 1)], -1).astype(np.int64)

  def batch(self, epoch: int, step: int) -> dict[str, Any]:
    """The host-local batch at (epoch, step); pure function of the position."""
    idx = self.indices(epoch, step)
    mask = idx >= 0
    filler = int(idx[mask][0]) if mask.any() else int(self.order(epoch)[0])
    examples = []
    for i in idx.tolist():
      ex = _as_example(self.source[i if i >= 0 else filler])
      examples.append(dataclasses.replace(ex, candidates=ex.candidates[: self.n]))
    b, n = len(examples), self.n
    where = np.zeros((b, n), bool)
    has_answer = np.zeros((b, n), bool)
    supporting = np.full((b, n), -1, np.int8)
    for r, ex in enumerate(examples):
      if not mask[r]:
        continue
      for c, cand in enumerate(ex.candidates):
        where[r, c], has_answer[r, c] = True, cand.has_answer
        if cand.is_supporting is not None:
          supporting[r, c] = int(cand.is_supporting)
    out: dict[str, Any] = {}
    if self.encode_fn is not None:
      out.update(self.encode_fn(examples))
      if "where" in out:
        where &= np.asarray(out["where"], bool)
    out.update(
        examples=examples, index=idx, query_mask=mask, where=where, has_answer=has_answer, is_supporting=supporting
    )
    return out

  def _positions(self) -> Iterator[tuple[int, int]]:
    epoch, step = self.epoch, self.step
    while self.num_epochs is None or epoch < self.num_epochs:
      if step >= self.steps_per_epoch:
        epoch, step = epoch + 1, 0
        continue
      yield epoch, step
      step += 1

  def __iter__(self) -> Iterator[dict[str, Any]]:
    """Batches from the current position on; state() after a yield names the batch after it."""
    positions = self._positions()
    if self.prefetch <= 0:
      for epoch, step in positions:
        batch = self.batch(epoch, step)
        self.epoch, self.step = epoch, step + 1
        yield batch
      return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      pending: list = []
      for pos in positions:
        pending.append((pos, pool.submit(self.batch, *pos)))
        if len(pending) > self.prefetch:
          (epoch, step), fut = pending.pop(0)
          batch = fut.result()
          self.epoch, self.step = epoch, step + 1
          yield batch
      for (epoch, step), fut in pending:
        batch = fut.result()
        self.epoch, self.step = epoch, step + 1
        yield batch
