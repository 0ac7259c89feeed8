"""The eval and export modes: score the systems' candidate orders, ask the reader, write results;
write the policy as a Hugging Face directory.

run_eval scores exactly the params it is given (policy_params, ref_params) and run_export writes the
policy it is given: the caller chooses them (the trainer's restore order for the eval and export
modes, the live policy for RRPO's periodic evaluation).
"""

from __future__ import annotations

import json
import tempfile

import jax
import numpy as np
from jax.experimental import multihost_utils

from rrpo_jax.train import evaluation
from rrpo_jax.train import restore
from rrpo_jax import paths
from rrpo_jax.core import sharding
from rrpo_jax.train.batches import encode
from rrpo_jax.config.validation import eval_systems
from rrpo_jax.train.loop import progress
from rrpo_jax.core.update import make_scorer
from rrpo_jax.train.reader_pool import Readers


def run_eval(
    config,
    workdir: str,
    *,
    reranker,
    dp: sharding.DataParallel,
    readers: Readers,
    writer,
    examples: list,
    split: str,
    step: int,
    policy_params=None,
    ref_params=None,
    quiet: bool = False,
) -> dict:
  """Evaluates retriever / reference / policy orders of `examples` (the split `split`) at `step`;
  writes results and runs (eval/step_N/; other splits than data.eval_split under
  eval/<split>/step_N/, logged as phase "val" and never written to the top-level results.json).
  Returns the results on every process (host 0 computes them)."""
  c = config
  e = c.eval
  systems = eval_systems(e)
  report = split == c.data.eval_split
  n = c.data.num_candidates
  score_eval = make_scorer(dp, reranker.apply, train_mode=False)
  repl = {"policy": dp.replicate(policy_params)} if "policy" in systems else {}
  if "reference" in systems:
    repl["reference"] = dp.replicate(ref_params)
  scores: dict[str, list[np.ndarray]] = {name: [] for name in repl}
  bsz = e.batch_size // jax.process_count()
  bar = progress(len(examples), "eval scoring", enabled=c.progress and not quiet)
  for lo in range(0, len(examples), bsz):
    chunk = list(examples[lo : lo + bsz])
    chunk += [None] * (bsz - len(chunk))  # padding queries: no valid candidates
    inputs, where = encode(reranker, chunk, n)
    for name, params in repl.items():
      s = score_eval(params, inputs, np.zeros((2,), np.uint32), 0)
      scores[name].extend(np.where(where, s, -np.inf)[i] for i, ex in enumerate(chunk) if ex is not None)
    bar.update(sum(ex is not None for ex in chunk))
  bar.close()
  orders = {}
  for name in systems:
    if name == "retriever":
      orders[name] = [list(range(len(ex.candidates))) for ex in examples]
    else:
      orders[name] = [
          [int(i) for i in np.argsort(-s, kind="stable")[: len(ex.candidates)]] for s, ex in zip(scores[name], examples)
      ]
  results = None
  if jax.process_index() == 0:
    results = _answer_and_write(
        c,
        workdir,
        examples,
        orders,
        scores,
        readers=readers,
        writer=writer,
        split=split,
        step=step,
        report=report,
        quiet=quiet,
    )
  return _broadcast(results)


def _answer_and_write(c, workdir, examples, orders, scores, *, readers, writer, split, step, report, quiet) -> dict:
  """Host 0: the reader's answers for every system, metrics, comparisons; files and metric rows."""
  e = c.eval
  systems = eval_systems(e)
  scoring = readers.scoring("eval")
  calls = len(examples) * len(systems) + (sum(len(ex.candidates) for ex in examples) if e.oracle else 0)
  answer_bar = progress(calls, "eval reader", enabled=c.progress and not quiet)

  def in_batches(call, bar, requests, *columns):  # call(requests, *columns) on slices of 8, the bar ticking
    out = []
    for lo in range(0, len(requests), 8):
      part = requests[lo : lo + 8]
      out.extend(call(part, *(col[lo : lo + 8] for col in columns)))
      bar.update(len(part))
    return out

  def answer_fn(requests):
    return in_batches(scoring.answer, answer_bar, requests)

  def likelihood_fn(requests, answers):  # q of each system's top-k (eval.likelihood), cached like answers
    with progress(len(requests), "eval likelihood", enabled=c.progress and not quiet) as bar:
      return in_batches(lambda r, a: scoring.answer_and_likelihood(r, a, generate=False)[1], bar, requests, answers)

  results = evaluation.evaluate(
      examples,
      orders,
      answer_fn=answer_fn,
      k=e.k,
      scores=scores,
      oracle=e.oracle,
      resamples=e.resamples,
      seed=c.seed,
      likelihood_fn=likelihood_fn if e.likelihood else None,
  )
  answer_bar.close()
  results["step"] = step
  results["reader"] = {"identity": scoring.reader.identity, **scoring.run_stats(evaluation=True)}
  results["split"] = split
  if e.name:
    results["name"] = e.name
  sub = (() if report else (split,)) + ((e.name,) if e.name else ())
  out_dir = paths.join(workdir, "eval", *sub, f"step_{step}")
  evaluation.write_outputs(out_dir, examples, results, orders=orders, scores=scores, step=step, write_runs=e.write_runs)
  if report:
    keys = ("step", "split", "name", "k", "systems", "comparisons", "resamples", "reader")
    paths.write_text(
        paths.join(workdir, f"results_{e.name}.json" if e.name else "results.json"),
        json.dumps({key: results[key] for key in keys if key in results}, indent=1),
    )
  writer.write(("eval" if report else "val") + (f"_{e.name}" if e.name else ""), step, evaluation.flat_metrics(results))
  return results


def _broadcast(results: dict | None) -> dict:
  """Host 0's results on every process (as JSON); unchanged on one process."""
  if jax.process_count() == 1:
    assert results is not None  # the only process is host 0, which computed them
    return results
  payload = json.dumps(results or {}).encode()
  size = int(multihost_utils.broadcast_one_to_all(np.int32(len(payload))))
  buf = np.zeros((size,), np.uint8)
  buf[: len(payload)] = np.frombuffer(payload, np.uint8)[:size]
  return json.loads(bytes(multihost_utils.broadcast_one_to_all(buf)).decode())


def run_export(config, workdir: str, policy: restore.Snapshot, *, reranker) -> str:
  """Writes `policy` (the trainer's: the export.which checkpoint, else what the run starts from) as a
  Hugging Face directory (export.path, else <workdir>/export); returns its path."""
  c = config
  path = c.export.path or paths.join(workdir, "export")
  if jax.process_index() == 0:
    training = (
        f"rrpo_jax: {policy.phase} step {policy.step} ({c.export.which}); reader "
        f"{c.reader.backend}:{c.reader.model}; data {c.data.train_path or 'bundled ' + c.data.sample + ' sample'}"
    )
    exported = restore.with_params(reranker, policy.params)
    if paths.is_local(path):
      exported.save_pretrained(path, training=training)
    else:  # the Hugging Face writers need a local directory: write there, then copy
      with tempfile.TemporaryDirectory() as tmp:
        exported.save_pretrained(tmp, training=training)
        paths.copy_tree(tmp, path)
    print(f"exported {policy.phase} step {policy.step} to {path}", flush=True)
  return path
