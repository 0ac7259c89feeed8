"""Converts a public QA file to DPR-style JSON lines.

  python -m rrpo_jax.data.convert --format=hotpotqa hotpot_dev_distractor_v1.json dev.jsonl

Bad records stop the conversion with a message naming file, line or record, and field (exit code
2, no traceback); --skip_invalid skips and counts them instead and reports the count.
"""

from __future__ import annotations

import argparse
import sys

from rrpo_jax.data.errors import DataError, cli_error, report_skipped
from rrpo_jax.data.files import read_examples, write_examples
from rrpo_jax.data.formats import FORMATS


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m rrpo_jax.data.convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--format", required=True, choices=list(FORMATS), help="input format")
  parser.add_argument("--skip_invalid", action="store_true", help="skip and count bad records")
  parser.add_argument("input", help="input file (.gz accepted)")
  parser.add_argument("output", help="output DPR-style .jsonl (.jsonl.gz compresses)")
  args = parser.parse_args(argv)
  try:
    examples, report = read_examples(args.input, format=args.format, skip_invalid=args.skip_invalid)
    n = write_examples(args.output, examples)
  except (DataError, OSError) as e:
    return cli_error(e)
  report_skipped(report)
  print(f"wrote {n} examples to {args.output}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
