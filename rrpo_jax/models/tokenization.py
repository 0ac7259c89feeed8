"""(query, passage) encoding for the rerankers, with length buckets.

Cross-encoders (PairEncoder, right padding):
A pair is the family's two-segment input: BERT "[CLS] q [SEP] p [SEP]" (token types 0 / 1),
XLM-R "<s> q </s></s> p </s>". The passage segment is `title + ". " + text` for every family (just
`text` when the title is empty): plain text, so the same string can be given to any other tool
(e.g. sentence-transformers CrossEncoder) and no special token is injected into the passage.
Only the passage is truncated; a query longer than max_length on its own is truncated too
(longest-first) rather than failing. Batches are padded to L = the smallest bucket >= the longest
pair in the batch, so jit sees at most len(buckets) sequence lengths. With `pack` (ModernBERT), the
same pairs can come as packed rows of L tokens instead (rrpo_jax.models.packing), where that cuts the rows.

Decoder rerankers (PromptEncoder, left padding, the same buckets): one prompt per pair in
Qwen3-Reranker's template (its model card), prefix + body + suffix, each tokenised without
special tokens:
  prefix  <|im_start|>system\nJudge whether the Document meets the requirements based on the Query
          and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n
          <|im_start|>user\n
  body    <Instruct>: {instruction}\n<Query>: {query}\n<Document>: {passage}
  suffix  <|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n
As in the card, the body is cut on the right to max_length - len(prefix) - len(suffix) tokens (the
passage's end goes first), and the prompt is padded on the left, so the last position is the
token the "yes" / "no" logits are read after.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rrpo_jax.models import packing

DEFAULT_BUCKETS = (32, 64, 128, 192, 256, 384, 512)

Passage = Any  # a (title, text) pair or a plain text string


def join_title(passage: Passage) -> str:
  """(title, text) -> "title. text" ("text" if the title is empty); a str passes through."""
  if isinstance(passage, str):
    return passage
  title, text = passage
  title = (title or "").strip()
  return f"{title}. {text}" if title else text


def smallest_bucket(length: int, buckets: Sequence[int]) -> int:
  """The smallest of the sorted `buckets` >= length (the largest if none is)."""
  for b in buckets:
    if b >= length:
      return b
  return buckets[-1]


class PairEncoder:
  """Tokenises (query, passage) pairs into bucketed int32 arrays for CrossEncoder.

  tokenizer: a Hugging Face (fast) tokenizer; max_length: the longest pair in tokens (specials
  included); buckets: allowed padded lengths (max_length is always added, larger ones dropped);
  pack: encode() returns packed rows (rrpo_jax.models.packing) "on" always, "auto" when they take at most
  packing.AUTO_RATIO of the padded rows, "off" never (the model family must have packed_scores).
  """

  def __init__(self, tokenizer, *, max_length: int = 256, buckets: Sequence[int] = DEFAULT_BUCKETS, pack: str = "off"):
    if pack not in packing.PACK_MODES:
      raise ValueError(f"pack must be one of {packing.PACK_MODES}, got {pack!r}")
    self.tokenizer = tokenizer
    self.max_length = int(max_length)
    self.buckets = tuple(sorted({b for b in buckets if b < self.max_length} | {self.max_length}))
    self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    self.pack = pack

  def bucket(self, length: int) -> int:
    """The smallest bucket >= length."""
    return smallest_bucket(length, self.buckets)

  def tokenize(self, queries: Sequence[str], passages: Sequence[Passage]) -> tuple[list[list[int]], list[list[int]]]:
    """Unpadded token ids and token types for pairs (queries[i], passages[i])."""
    texts = [join_title(p) for p in passages]
    try:
      ids, types = self._call(queries, texts, "only_second")
    except Exception:  # the fast tokenizer refuses when a query alone exceeds max_length
      ids, types = [], []
      for q, t in zip(queries, texts):
        try:
          x, y = self._call([q], [t], "only_second")
        except Exception:
          x, y = self._call([q], [t], "longest_first")
        ids += x
        types += y
    too_long = [i for i, x in enumerate(ids) if len(x) > self.max_length]
    if too_long:  # tokenizers that only warn: truncate those pairs longest-first
      x, y = self._call([queries[i] for i in too_long], [texts[i] for i in too_long], "longest_first")
      for j, i in enumerate(too_long):
        ids[i], types[i] = x[j], y[j]
    return ids, types

  def _call(self, queries, texts, truncation):
    enc = self.tokenizer(
        list(queries),
        list(texts),
        truncation=truncation,
        max_length=self.max_length,
        padding=False,
        return_token_type_ids=True,
        return_attention_mask=False,
    )
    return list(enc["input_ids"]), list(enc["token_type_ids"])

  def pad(self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]], length: int) -> dict[str, np.ndarray]:
    """Lists of token ids -> input_ids, attention_mask, token_type_ids int32[len(ids), length]."""
    m = len(ids)
    out_ids = np.full((m, length), self.pad_id, np.int32)
    out_mask = np.zeros((m, length), np.int32)
    out_types = np.zeros((m, length), np.int32)
    for i, (x, t) in enumerate(zip(ids, types)):
      out_ids[i, : len(x)] = x
      out_mask[i, : len(x)] = 1
      out_types[i, : len(t)] = t
    return {"input_ids": out_ids, "attention_mask": out_mask, "token_type_ids": out_types}

  def encode(self, questions: Sequence[str], passages: Sequence[Sequence[Passage]], *, n: int) -> dict[str, np.ndarray]:
    """B questions, passages[b] a list of <= n (title, text) -> arrays [B, n, L] and where bool[B, n];
    or, where self.pack says so, the packed arrays (packing.PACKED_KEYS, rows of L tokens) and where.

    L is the smallest bucket >= the longest pair. Missing candidate slots (len(passages[b]) < n)
    are padding: where=False, attention_mask all 0 (no tokens in the packed rows).
    """
    if len(questions) != len(passages):
      raise ValueError(f"{len(questions)} questions but {len(passages)} passage lists")
    qs, ps, slots = [], [], []
    for b, (q, plist) in enumerate(zip(questions, passages)):
      if len(plist) > n:
        raise ValueError(f"question {b} has {len(plist)} passages, more than n={n}")
      for j, p in enumerate(plist):
        qs.append(q)
        ps.append(p)
        slots.append(b * n + j)
    ids, types = self.tokenize(qs, ps) if qs else ([], [])
    length = self.bucket(max((len(x) for x in ids), default=1))
    where = np.zeros(len(questions) * n, bool)
    where[slots] = True
    if self.pack != "off":
      per_pair: list[list[int]] = [[] for _ in range(len(questions) * n)]
      for s, x in zip(slots, ids):
        per_pair[s] = x
      per_query = [per_pair[b * n : (b + 1) * n] for b in range(len(questions))]
      placements, rows = packing.plan(per_query, length=length)
      if self.pack == "on" or packing.pays(rows, n, ratio=packing.AUTO_RATIO):
        out = packing.pack(per_query, n=n, length=length, pad_id=self.pad_id, placements=placements, rows=rows)
        out["where"] = where.reshape(len(questions), n)
        return out
    flat = self.pad([[]] * (len(questions) * n), [[]] * (len(questions) * n), length)
    if ids:
      filled = self.pad(ids, types, length)
      for k in flat:
        flat[k][slots] = filled[k]
    out = {k: v.reshape(len(questions), n, length) for k, v in flat.items()}
    out["where"] = where.reshape(len(questions), n)
    return out


QWEN3_RERANKER_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_RERANKER_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def qwen3_body(instruction: str, query: str, passage: Passage) -> str:
  """The card's format_instruction: "<Instruct>: i\\n<Query>: q\\n<Document>: d" (d = join_title)."""
  return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {join_title(passage)}"


class PromptEncoder(PairEncoder):
  """Tokenises (query, passage) pairs as left-padded decoder prompts (Qwen3-Reranker's template).

  Same interface and buckets as PairEncoder (token_type_ids are all 0); instruction None means
  the card's default. Raises ValueError if prefix and suffix leave no room for the body.
  """

  def __init__(
      self,
      tokenizer,
      *,
      max_length: int = 256,
      buckets: Sequence[int] = DEFAULT_BUCKETS,
      instruction: str | None = None,
      prefix: str = QWEN3_RERANKER_PREFIX,
      suffix: str = QWEN3_RERANKER_SUFFIX,
  ):
    super().__init__(tokenizer, max_length=max_length, buckets=buckets)
    self.instruction = instruction or QWEN3_DEFAULT_INSTRUCTION
    self.prefix_ids = list(tokenizer.encode(prefix, add_special_tokens=False))
    self.suffix_ids = list(tokenizer.encode(suffix, add_special_tokens=False))
    self.body_length = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
    if self.body_length <= 0:
      raise ValueError(
          f"max_length {self.max_length} leaves no room after the prompt's "
          f"{len(self.prefix_ids) + len(self.suffix_ids)} template tokens"
      )

  def tokenize(self, queries: Sequence[str], passages: Sequence[Passage]) -> tuple[list[list[int]], list[list[int]]]:
    """Unpadded prompt ids (prefix + body cut to body_length + suffix) and all-zero token types."""
    bodies = [qwen3_body(self.instruction, q, p) for q, p in zip(queries, passages)]
    enc = self.tokenizer(
        bodies,
        add_special_tokens=False,
        truncation=True,
        max_length=self.body_length,
        padding=False,
        return_attention_mask=False,
    )
    ids = [self.prefix_ids + list(x)[: self.body_length] + self.suffix_ids for x in enc["input_ids"]]
    return ids, [[0] * len(x) for x in ids]

  def pad(self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]], length: int) -> dict[str, np.ndarray]:
    """Lists of token ids -> int32[len(ids), length] arrays, padded on the left."""
    m = len(ids)
    out_ids = np.full((m, length), self.pad_id, np.int32)
    out_mask = np.zeros((m, length), np.int32)
    for i, x in enumerate(ids):
      if len(x):
        out_ids[i, length - len(x) :] = x
        out_mask[i, length - len(x) :] = 1
    return {"input_ids": out_ids, "attention_mask": out_mask, "token_type_ids": np.zeros((m, length), np.int32)}
