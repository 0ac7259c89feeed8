"""Are two runs the same? Final RRPO params (bit for bit), metrics rows (less wall times) and
results.json of two workdirs, e.g. the same smoke run made by two versions of the code:

  for side in base new; do   # base: a checkout of the earlier commit, new: this one
    (cd /path/to/$side && PYTHONPATH=$PWD JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
      python -m rrpo_jax.main --config=configs/smoke.py --workdir=/tmp/bit_$side/run --config.mode=sft,rrpo,eval \\
      --config.reader.backend=fake --config.reader.cache_path=/tmp/bit_$side/c.sqlite --config.rrpo.batch_size=2)
  done
  python tools/bit_identical.py /tmp/bit_base/run /tmp/bit_new/run

Prints whether the params are bit-identical, the metric fields that differ (a field only one side
has counts as differing) and whether results.json's systems and comparisons agree. Exit 0 when
the params are identical.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np

from rrpo_jax.train.checkpoint import Checkpointer

WALL = ("time", "seconds")  # metric fields holding wall times: never compared


def params(workdir: str, phase: str = "rrpo"):
  ckpt = Checkpointer(f"{workdir}/checkpoints/{phase}", read_only=True)
  try:
    return ckpt.read_params()
  finally:
    ckpt.close()


def rows(workdir: str) -> list[dict]:
  with open(f"{workdir}/metrics.jsonl", encoding="utf-8") as f:
    return [{k: v for k, v in json.loads(line).items() if not any(w in k for w in WALL)} for line in f]


def main(a: str, b: str) -> int:
  (pa, sa), (pb, sb) = params(a), params(b)
  la, lb = jax.tree.leaves(pa), jax.tree.leaves(pb)
  same = len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))
  print(f"rrpo params at steps {sa} / {sb}, {len(la)} / {len(lb)} arrays: {'bit-identical' if same else 'DIFFER'}")
  ra, rb = rows(a), rows(b)
  differ = sorted({k for x, y in zip(ra, rb) for k in set(x) | set(y) if x.get(k) != y.get(k)})
  print(f"metrics rows {len(ra)} / {len(rb)}; fields that differ (wall times left out): {differ or 'none'}")
  ea, eb = (json.load(open(f"{w}/results.json", encoding="utf-8")) for w in (a, b))
  print(f"results.json systems {'equal' if ea['systems'] == eb['systems'] else 'DIFFER'}")
  for pair in sorted(set(ea["comparisons"]) | set(eb["comparisons"])):
    ca, cb = ea["comparisons"].get(pair, {}), eb["comparisons"].get(pair, {})
    fields = sorted(
        {f"{m}.{k}" for m in set(ca) | set(cb) if m != "questions" for k in set(ca.get(m, {})) | set(cb.get(m, {}))}
    )
    changed = [
        f
        for f in fields
        if ca.get(f.split(".")[0], {}).get(f.split(".")[1]) != cb.get(f.split(".")[0], {}).get(f.split(".")[1])
    ]
    print(f"  comparison {pair}: fields that differ: {changed or 'none'}")
  return 0 if same else 1


if __name__ == "__main__":
  if len(sys.argv) != 3:
    sys.exit(__doc__)
  sys.exit(main(sys.argv[1], sys.argv[2]))
