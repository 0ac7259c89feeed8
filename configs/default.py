"""The package's defaults as a config file: --config=configs/default.py.

This file defines no fields; it only re-exports. Every field, with its default and a one-line
comment (the paper's unpublished values marked "unpublished"), is defined in rrpo_jax/config.py
(get_config, reader_config); the paper-scale variants paper_scale, qwen3_scale, modernbert_scale
are in rrpo_jax/config/variants.py. The defaults live in the package because the package reads them
itself (the reader's defaults, start-up validation) and must not import from configs/. Other config
files start from get_config() and change what they need.
"""

from rrpo_jax.config import get_config, reader_config  # noqa: F401  (re-exported)
from rrpo_jax.config.variants import modernbert_scale, paper_scale, qwen3_scale  # noqa: F401  (re-exported)
