"""Sequence packing (host-side numpy): each query's (query, passage) pairs in shared rows of L tokens.

Query b's pairs j < N (token lists of lengths l_j <= L; a missing candidate is empty) go to rows by
first-fit decreasing: longest first, each into the first row with room, so pair j occupies
[o_j, o_j + l_j) of row r_j and no pair is split. Every query gets R = row_bucket(max_b rows_b)
rows, so jit sees few shapes. The arrays the packed model reads (B queries, N slots):
  packed_ids   int32[B, R, L]  token ids; pad_id where no pair is
  segment_ids  int32[B, R, L]  j + 1 on the tokens of pair j, 0 on padding
  positions    int32[B, R, L]  t on the t-th token of its pair (rotary positions restart per pair)
  pair_start   int32[B, N]     r_j * L + o_j, the flat index of pair j's first token (0 if missing)
Attention stays within a segment (segment_ids equal) and scores are gathered at pair_start (CLS)
or summed per segment (mean), so a pair's score does not depend on what shares its row.
Packing is per query: data parallelism splits the batch by query, so rows never cross devices.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

PACKED_KEYS = ("packed_ids", "segment_ids", "positions", "pair_start")  # the packed model inputs
PACK_MODES = ("auto", "on", "off")  # data.pack: pack where it pays (see pays), always, never
# pack="auto" packs when R <= AUTO_RATIO * N. bench/unpad.py: a packed row costs ~2% more than a
# padded one (0.98x at R = N); half the rows ran 1.7-1.9x faster, 0.28 of them 3.1-3.5x; 0.8 keeps
# a margin for the noise of a loaded machine (0.88-1.08x at 0.9 of the rows).
AUTO_RATIO = 0.8


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> tuple[np.ndarray, np.ndarray, int]:
  """Row int32[n], offset int32[n] of each item and the number of rows: items longest first, each
  into the first row with room (capacity - used >= length); empty items get row 0, offset 0."""
  sizes = np.asarray(lengths, np.int64)
  if sizes.size and sizes.max() > capacity:
    raise ValueError(f"an item of {sizes.max()} tokens does not fit a row of {capacity}")
  row = np.zeros(sizes.size, np.int32)
  offset = np.zeros(sizes.size, np.int32)
  used = np.zeros(max(int(sizes.size), 1), np.int64)  # at most one row per item
  rows = 0
  for i in np.argsort(-sizes, kind="stable"):
    n = sizes[i]
    if n == 0:
      continue
    r = int(np.argmax(used[:rows] + n <= capacity)) if rows else 0
    if not rows or used[r] + n > capacity:
      r, rows = rows, rows + 1
    row[i], offset[i] = r, used[r]
    used[r] += n
  return row, offset, rows


def row_bucket(rows: int) -> int:
  """The row count jit sees: rows rounded up to a multiple of 2^max(0, bitlen(rows - 1) - 4), i.e.
  every count up to 16, then 8 steps per doubling (at most 1/8 of the rows are padding)."""
  rows = max(int(rows), 1)
  step = 1 << max(0, (rows - 1).bit_length() - 4)
  return -(-rows // step) * step


def pays(rows: int, n: int, *, ratio: float) -> bool:
  """Whether R packed rows beat the padded layout's N rows of the same length: R <= ratio * N."""
  return rows <= ratio * n


def plan(ids: Sequence[Sequence[Sequence[int]]], *, length: int) -> tuple[list, int]:
  """First-fit decreasing placements [(row, offset) per query] of ids[b][j] in rows of `length`,
  and R = row_bucket(the most rows any query needs)."""
  placements = [first_fit_decreasing([len(x) for x in pairs], length) for pairs in ids]
  return placements, row_bucket(max((p[2] for p in placements), default=1))


def pack(
    ids: Sequence[Sequence[Sequence[int]]], *, n: int, length: int, pad_id: int, placements=None, rows=None
) -> dict[str, np.ndarray]:
  """ids[b][j]: token ids of query b's pair j (j < n; [] for a missing candidate) -> the packed
  arrays above with R rows of `length` (placements, rows: from plan(ids, length=length))."""
  if placements is None or rows is None:
    placements, rows = plan(ids, length=length)
  b = len(ids)
  out_ids = np.full((b, rows, length), pad_id, np.int32)
  seg = np.zeros((b, rows, length), np.int32)
  pos = np.zeros((b, rows, length), np.int32)
  start = np.zeros((b, n), np.int32)
  for q, (pairs, (row, offset, used)) in enumerate(zip(ids, placements)):
    if len(pairs) > n:
      raise ValueError(f"query {q} has {len(pairs)} pairs, more than n={n}")
    if used > rows:
      raise ValueError(f"query {q} needs {used} rows, more than {rows}")
    for j, x in enumerate(pairs):
      if not len(x):
        continue
      r, o = row[j], offset[j]
      out_ids[q, r, o : o + len(x)] = x
      seg[q, r, o : o + len(x)] = j + 1
      pos[q, r, o : o + len(x)] = np.arange(len(x))
      start[q, j] = r * length + o
  return {"packed_ids": out_ids, "segment_ids": seg, "positions": pos, "pair_start": start}


def unpack(packed: dict[str, np.ndarray], *, n: int) -> list[list[list[int]]]:
  """The inverse of pack: ids[b][j] (for tests and debugging)."""
  ids, seg = packed["packed_ids"], packed["segment_ids"]
  b = ids.shape[0]
  flat_ids, flat_seg = ids.reshape(b, -1), seg.reshape(b, -1)
  return [[flat_ids[q][flat_seg[q] == j + 1].tolist() for j in range(n)] for q in range(b)]
