"""Data: the Example format, format adapters, BM25 candidates, bundled samples, TFDS storage and
the resumable sharded input pipeline. TFDS (tfds_builder) is imported on demand only."""

from rrpo_jax.data.errors import DataError, ReadReport
from rrpo_jax.data.example import Candidate, Example, candidate, relabel
from rrpo_jax.data.files import read_examples, write_examples
from rrpo_jax.data.formats import FORMATS
from rrpo_jax.data.pipeline import Loader, make_encode_fn
from rrpo_jax.data.sample import SPLITS, load_sample, recall_at_k, sample_path

__all__ = [
    "Candidate",
    "DataError",
    "Example",
    "FORMATS",
    "Loader",
    "ReadReport",
    "SPLITS",
    "candidate",
    "load_sample",
    "make_encode_fn",
    "read_examples",
    "recall_at_k",
    "relabel",
    "sample_path",
    "write_examples",
]
