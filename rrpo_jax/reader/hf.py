"""In-process transformers causal LM reader (PyTorch): batched greedy generation, left padding."""

from __future__ import annotations

import inspect
import time
from typing import Sequence, cast

from absl import logging

from rrpo_jax.reader import prompts
from rrpo_jax.reader.base import DEFAULTS, Reader, Request, Response, Scored


class HFReader(Reader):
  """Greedy `generate` over batches of `batch_size` prompts sorted by length.

  model: a local checkpoint path or a loaded PreTrainedModel (then pass `tokenizer`).
  chat: None = use the tokenizer's chat template when it has one.
  Special tokens come only from the chat template and the tokenizer's own additions: a passage that
  holds "<|im_end|>" or "[SEP]" is tokenised as text (encode).
  Scoring (`score`): one forward pass over the prompt tokens (as `encode` gives them to `generate`)
  followed by the continuation's tokens, left-padded in batches of `batch_size`, log_softmax (float32)
  at the positions that predict each continuation token.
  """

  backend = "hf"

  def __init__(
      self,
      *,
      model,
      tokenizer=None,
      template: prompts.PromptTemplate | None = None,
      max_tokens: int = DEFAULTS["max_tokens"],
      batch_size: int = 8,
      device: str | None = None,
      dtype: str | None = None,
      chat: bool | None = None,
      postprocess=prompts.postprocess,
  ):
    super().__init__(template=template or prompts.PromptTemplate(), max_tokens=max_tokens, postprocess=postprocess)
    import torch  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel

    self._torch = torch
    if isinstance(model, str):
      tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(model)
      kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
      model = transformers.AutoModelForCausalLM.from_pretrained(model, **kwargs)
    if tokenizer is None:
      raise ValueError("pass `tokenizer` with a loaded model")
    self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    self.model = model.to(self.device).eval()
    self.tokenizer = tokenizer
    self.tokenizer.padding_side = "left"
    if self.tokenizer.pad_token_id is None:
      self.tokenizer.pad_token = self.tokenizer.eos_token
    self.batch_size = int(batch_size)
    self.chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else bool(chat)
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    self._eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
    self._gen = transformers.GenerationConfig(
        max_new_tokens=self.max_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=self.tokenizer.pad_token_id,
        eos_token_id=sorted(self._eos) or None,
    )

  def _settings(self) -> dict:
    return {"model": getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__, "chat": self.chat}

  def _text(self, request: Request) -> str:
    if self.chat:
      return self.tokenizer.apply_chat_template(
          self.template.messages(request.question, request.passages), add_generation_prompt=True, tokenize=False
      )
    return self.template.render(request.question, request.passages)

  def encode(self, request: Request) -> list[int]:
    """The prompt's token ids (special tokens only where the template or the tokenizer put them)."""
    tok = self.tokenizer
    if not self.chat:
      return tok(self._text(request), split_special_tokens=True)["input_ids"]
    messages = self.template.messages(request.question, request.passages)
    # Texts without special-token strings: the whole prompt at once, as the template meant it
    # (SentencePiece tokenizers add a prefix space to every separately tokenised piece).
    if all(self._ids(m["content"], plain=True) == self._ids(m["content"], plain=False) for m in messages):
      return self._ids(self._text(request), plain=False)  # the chat template wrote the special tokens
    render = lambda ms: tok.apply_chat_template(ms, add_generation_prompt=True, tokenize=False)  # noqa: E731
    pieces = prompts.chat_pieces(render, messages)
    if pieces is None:
      logging.log_first_n(logging.WARNING, "the chat template rewrites message texts: special tokens parsed in them", 1)
      return self._ids(self._text(request), plain=False)
    return [i for text, is_message in pieces for i in self._ids(text, plain=is_message)]

  def _ids(self, text: str, *, plain: bool) -> list[int]:
    """Token ids of `text` without added BOS / EOS; plain: special-token strings are text."""
    return self.tokenizer(text, add_special_tokens=False, split_special_tokens=plain)["input_ids"]

  def _complete(self, requests: Sequence[Request]) -> list[Response]:
    enc = [self.encode(r) for r in requests]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    out: list[Response | None] = [None] * len(enc)
    torch = self._torch
    for lo in range(0, len(order), self.batch_size):
      idx = order[lo : lo + self.batch_size]
      batch = self.tokenizer.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt").to(self.device)
      start = time.perf_counter()
      with torch.inference_mode():
        gen = self.model.generate(**batch, generation_config=self._gen)
      latency = (time.perf_counter() - start) / len(idx)
      new = gen[:, batch["input_ids"].shape[1] :].tolist()
      for i, tokens in zip(idx, new):
        n = next((j for j, t in enumerate(tokens) if t in self._eos), len(tokens))
        raw = self.tokenizer.decode(tokens[:n], skip_special_tokens=True)
        out[i] = Response(text="", raw=raw, prompt_tokens=len(enc[i]), completion_tokens=n, latency_s=latency)
    return cast(list[Response], out)  # every index was filled: order is a permutation of them

  def continuation_ids(self, prompt_text: str, continuation: str) -> list[int]:
    """The continuation's tokens as they follow the prompt text: ids(prompt + continuation) less
    ids(prompt) where the first starts with the second (as a server tokenises the joined text; a
    SentencePiece tokenizer would add a prefix space to a separately tokenised piece), else
    ids(continuation). Special-token strings in the continuation are text."""
    base = self._ids(prompt_text, plain=True)
    full = self._ids(prompt_text + continuation, plain=True)
    return full[len(base) :] if full[: len(base)] == base else self._ids(continuation, plain=True)

  def _score(self, requests: Sequence[Request], continuations: Sequence[str]) -> list[Scored]:
    pairs = []
    for request, continuation in zip(requests, continuations):
      text = self._text(request)
      continuation = continuation if text[-1:].isspace() else " " + continuation
      pairs.append((self.encode(request), self.continuation_ids(text, continuation)))
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    out: list[Scored | None] = [None] * len(pairs)
    torch = self._torch
    accepts = inspect.signature(self.model.forward).parameters
    for lo in range(0, len(order), self.batch_size):
      idx = order[lo : lo + self.batch_size]
      batch = self.tokenizer.pad({"input_ids": [pairs[i][0] + pairs[i][1] for i in idx]}, return_tensors="pt")
      keep = max(len(pairs[i][1]) for i in idx) + 1  # continuations end every row (left padding)
      if "position_ids" in accepts:  # as generate numbers left-padded rows
        batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
      kwargs = {"logits_to_keep": keep} if "logits_to_keep" in accepts else {}  # no [B, L, vocab] logits
      start = time.perf_counter()
      with torch.inference_mode():
        logits = self.model(**batch.to(self.device), **kwargs).logits
        logits = logits[:, -keep:].float()
        # logits at position t predict token t + 1: a row's m continuation tokens (its last m) are
        # predicted at the m positions before its last.
        found = []
        for row, i in enumerate(idx):
          cont = pairs[i][1]
          steps = torch.log_softmax(logits[row, keep - len(cont) - 1 : keep - 1], dim=-1)
          found.append(
              steps.gather(-1, torch.tensor(cont, dtype=torch.long, device=steps.device)[:, None])[:, 0].tolist()
          )
      latency = (time.perf_counter() - start) / len(idx)
      for i, values in zip(idx, found):
        ok = bool(values)
        out[i] = Scored(
            logprobs=tuple(values),
            prompt_tokens=len(pairs[i][0]),
            latency_s=latency,
            ok=ok,
            error=None if ok else "the continuation has no tokens",
        )
    return cast(list[Scored], out)  # every index was filled: order is a permutation of them
