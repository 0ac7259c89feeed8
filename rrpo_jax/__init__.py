"""rrpo_jax: train RAG rerankers with reinforcement learning from a reader LLM's feedback (RRPO)."""

__version__ = "0.1.0"
