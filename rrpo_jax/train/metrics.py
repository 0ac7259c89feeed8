"""Metric writing: TensorBoard events + a JSONL log + the resolved config, from host 0 only.

Layout in the workdir (a local directory or an object-store URI such as gs://bucket/run: paths.py):
  config.json        the resolved config of the run (rewritten at every start; passwords in URLs masked)
  metrics.jsonl      one JSON object per write: {"phase", "step", "time", <scalars>}; appended on a
                     local disk, rewritten whole at every write on an object store (no append there)
  tb/                tensorboardX event files, tags "<phase>/<name>"
  plots.png          reward, and eval / val EM/F1 over steps (plot())
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from typing import Any, Mapping, TextIO

import jax
import numpy as np

from rrpo_jax import paths


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss."""


def check_finite(phase: str, step: int, metrics: Mapping[str, Any], keys=("loss",)):
  """Raises NonFiniteLossError naming the phase and step if a watched metric is not finite."""
  for key in keys:
    if key in metrics and not math.isfinite(float(metrics[key])):
      raise NonFiniteLossError(
          f"non-finite {key} ({float(metrics[key])}) at {phase} step {step}; stopping. The last "
          "checkpoint is intact: lower the learning rate or check the data, then rerun to resume."
      )


def _scalar(v):
  if isinstance(v, (bool, np.bool_)):
    return float(v)
  if isinstance(v, (int, float, np.integer, np.floating)):
    return float(v)
  if isinstance(v, (np.ndarray, jax.Array)) and np.size(v) == 1:
    return float(np.asarray(v).reshape(()))
  return None


# ://user:password@ in a URL (a cache server's, say): the password never reaches config.json.
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@/\s]+@")


def mask_passwords(text: str) -> str:
  """`text` with the password of every user:password@ URL replaced by ***."""
  return _URL_PASSWORD.sub(r"\1***@", text)


class _Jsonl:
  """metrics.jsonl: appended line by line on a local disk; on an object store (no append) the lines
  are kept in memory and the whole file is uploaded again at every write."""

  def __init__(self, path: str):
    self.path = path
    self._file: TextIO | None = None
    self._lines: list[str] = []
    self._open()

  def _open(self):
    if paths.is_local(self.path):
      self._file = open(self.path, "a", encoding="utf-8")
    elif paths.exists(self.path):
      self._lines = paths.read_text(self.path).splitlines(keepends=True)

  def write(self, line: str):
    if self._file is not None:
      self._file.write(line)
      self._file.flush()
    else:
      self._lines.append(line)
      paths.write_text(self.path, "".join(self._lines))

  def rewrite(self, rows: list[dict]):
    """Replaces the file's content by `rows`."""
    self.close()
    paths.write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
    self._lines = []
    self._open()

  def close(self):
    if self._file is not None:
      self._file.close()
      self._file = None


class MetricWriter:
  """Writes scalars on host 0; on other hosts every method is a no-op."""

  def __init__(self, workdir: str, *, enabled: bool | None = None):
    self.workdir = workdir
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._tb = None
    self._jsonl: _Jsonl | None = None  # None on other hosts and once closed
    if self.enabled:
      paths.makedirs(workdir)
      self._jsonl = _Jsonl(paths.join(workdir, "metrics.jsonl"))

  def _board(self):
    if self._tb is None:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

      logdir = paths.join(self.workdir, "tb")
      paths.register_tensorboard_writer(logdir)
      self._tb = SummaryWriter(logdir, flush_secs=30)
    return self._tb

  def write_config(self, config):
    """Saves the resolved config beside the metrics (config.json)."""
    if not self.enabled:
      return
    text = config.to_json_best_effort(indent=2, sort_keys=True) + "\n"
    paths.write_text(paths.join(self.workdir, "config.json"), mask_passwords(text))

  def truncate(self, phase: str, after_step: int):
    """Drops JSONL rows of `phase` past `after_step` (a resumed run rewrites them)."""
    self._rewrite(lambda r: not (r.get("phase") == phase and r.get("step", 0) > after_step))

  def drop(self, phase: str, step: int):
    """Drops the JSONL rows of `phase` at `step` (an evaluation of that step, run again, replaces them)."""
    self._rewrite(lambda r: not (r.get("phase") == phase and r.get("step") == step))

  def _rewrite(self, keep):
    """Rewrites metrics.jsonl with the rows `keep` accepts, atomically: a full disk leaves it whole."""
    if not self.enabled:
      return
    assert self._jsonl is not None  # enabled and not closed
    rows = read_jsonl(self._jsonl.path)
    self._jsonl.rewrite([r for r in rows if keep(r)])

  def write(self, phase: str, step: int, scalars: Mapping[str, Any]):
    """Writes the scalar entries of `scalars` (non-scalars are skipped)."""
    if not self.enabled:
      return
    row = {"phase": phase, "step": int(step), "time": round(time.time(), 3)}
    board = self._board()
    for name, value in scalars.items():
      v = _scalar(value)
      if v is None:
        continue
      row[name] = v if math.isfinite(v) else str(v)
      board.add_scalar(f"{phase}/{name}", v, int(step))
    assert self._jsonl is not None  # enabled and not closed
    self._jsonl.write(json.dumps(row) + "\n")

  def flush(self):
    if self.enabled and self._tb is not None:
      self._tb.flush()

  def close(self):
    if not self.enabled:
      return
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None


def read_jsonl(path: str) -> list[dict]:
  """Rows of a metrics.jsonl file (a torn last line from a killed run is ignored)."""
  rows: list[dict] = []
  if not paths.exists(path):
    return rows
  for line in paths.read_text(path).splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return rows


def plot(workdir: str, out: str | None = None) -> str | None:
  """PNG of RRPO reward (mean over steps t) and eval EM/F1 over steps; returns its path."""
  rows = read_jsonl(paths.join(workdir, "metrics.jsonl"))
  train = [r for r in rows if r.get("phase") == "rrpo" and "reward" in r]
  evals = [r for r in rows if r.get("phase") == "eval"]
  vals = [r for r in rows if r.get("phase") == "val"]  # periodic evaluations on the selection split
  sft = [r for r in rows if r.get("phase") == "sft" and "loss" in r]
  if not (train or evals or vals or sft):
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  ax = axes[0]
  if sft:
    ax.plot([r["step"] for r in sft], [r["loss"] for r in sft], label="sft loss")
  ax.set_title("supervised warm-up")
  ax.set_xlabel("step")
  ax.legend(loc="best") if sft else None
  ax = axes[1]
  if train:
    steps = [r["step"] for r in train]
    ax.plot(steps, [r["reward"] for r in train], label="policy reward r")
    if "value" in train[0]:
      ax.plot(steps, [r["value"] for r in train], label="reference V", linestyle="--")
    ax.legend(loc="best")
  ax.set_title("RRPO reward (mean over t)")
  ax.set_xlabel("step")
  ax = axes[2]
  systems = sorted({k[:-3] for r in evals for k in r if k.endswith("_f1")})
  for system in systems:
    pts = [(r["step"], r[f"{system}_f1"], r.get(f"{system}_em")) for r in evals if f"{system}_f1" in r]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{system} F1")
    ax.plot([p[0] for p in pts], [p[2] for p in pts], marker="x", linestyle=":", label=f"{system} EM")
  for system in sorted({k[:-3] for r in vals for k in r if k.endswith("_f1") and "-" not in k}):
    val_pts = [(r["step"], r[f"{system}_f1"]) for r in vals if f"{system}_f1" in r]
    ax.plot([p[0] for p in val_pts], [p[1] for p in val_pts], marker="s", linestyle="--", label=f"val {system} F1")
  if systems or vals:
    ax.legend(loc="best", fontsize=7)
  ax.set_title("reader EM / F1 (x100): eval (report), val (selection)")
  ax.set_xlabel("RRPO step")
  fig.tight_layout()
  out = out or paths.join(workdir, "plots.png")
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=100)
  plt.close(fig)
  paths.write_bytes(out, png.getvalue())
  return out
