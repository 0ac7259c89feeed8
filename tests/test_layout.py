"""The package's layout (docs/architecture.md): imports point down, the top level stays small, and
importing the config pulls in no JAX, model, reader or data code."""

import ast
import pathlib
import subprocess
import sys

PKG = pathlib.Path(__file__).parents[1] / "rrpo_jax"
# what each layer may not import (directly, at any depth of the function bodies too)
FORBIDDEN = {
    "core": ("rrpo_jax.models", "rrpo_jax.reader", "rrpo_jax.data", "rrpo_jax.train", "rrpo_jax.config"),
    "models": ("rrpo_jax.reader", "rrpo_jax.data", "rrpo_jax.train", "rrpo_jax.config"),
    "reader": ("rrpo_jax.core", "rrpo_jax.models", "rrpo_jax.data", "rrpo_jax.train"),
    "data": ("rrpo_jax.models", "rrpo_jax.reader", "rrpo_jax.train"),
}


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
  out = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out += [(node.lineno, a.name) for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      out += [
          (node.lineno, f"{node.module}.{a.name}" if node.module == "rrpo_jax" else node.module) for a in node.names
      ]
  return out


def test_imports_point_down():
  bad = []
  for layer, forbidden in FORBIDDEN.items():
    for path in sorted((PKG / layer).glob("*.py")):
      for line, name in _imports(path):
        if name.startswith(forbidden):
          bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {name}")
  assert not bad, "\n".join(bad)


def test_top_level_is_small():
  modules = sorted(p.name for p in PKG.glob("*.py"))
  assert len(modules) <= 10, modules


def test_importing_the_config_imports_no_jax_model_reader_or_data():
  code = (
      "import sys, rrpo_jax.config; "
      "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'torch', 'llama_cpp') "
      "or m.startswith(('rrpo_jax.core', 'rrpo_jax.models', 'rrpo_jax.reader', 'rrpo_jax.data', 'rrpo_jax.train', 'rrpo_jax.config.validation'))); "
      "print(bad); sys.exit(1 if bad else 0)"
  )
  p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert p.returncode == 0, p.stdout + p.stderr
