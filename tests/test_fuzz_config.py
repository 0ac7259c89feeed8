"""Property-based fuzzing (hypothesis) of config overrides, `--config.<field>=<value>` as on the command
line: absl / ml_collections parse the text (their own one-line flag errors), then config.validate either
accepts the config or raises ConfigError naming the field. Nothing else may come out.

CI runs the "ci" profile (tests/conftest.py); HYPOTHESIS_PROFILE=long runs ~40x more examples.
"""

import os

from absl import flags
from hypothesis import HealthCheck, given, settings, strategies as st
from ml_collections import config_flags

from rrpo_jax import config as config_lib
from rrpo_jax.config import validation as config_validation
from test_fuzz_data import STATS, _write_stats  # noqa: F401  (the counts, written with RRPO_FUZZ_STATS)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [os.path.join(ROOT, "configs", name) for name in ("default.py", "smoke.py", "nq.py:paper")]


def _leaves(config, prefix=""):
  out = []
  for key, value in config.items():
    path = f"{prefix}{key}"
    out += _leaves(value, path + ".") if hasattr(value, "items") else [path]
  return out


def _parse(config_arg: str, overrides: list[str]):
  """The config as main.py's flags build it from `--config=...` and `--config.x=y` overrides."""
  argv = ["rrpo_jax.main", f"--config={config_arg}", *overrides]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config file", flag_values=fv, lock_config=True, sys_argv=argv)
  fv(argv)
  return fv.config


DEFAULT = _parse(CONFIGS[0], [])
FIELDS = _leaves(DEFAULT)
texts = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**6), 10**6).map(str),
    st.floats().map(str),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e309",
            "nan",
            "-inf",
            "True",
            "false",
            "None",
            "()",
            "(1,)",
            "(0, 512)",
            "(1, 2, 3)",
            "[3]",
            "{}",
            "a,b",
            "sft,,rrpo",
            "eval",
            "export",
            "default",
            "random",
            "/nonexistent",
            ".",
            "./x",
            "\x00",
            "é" * 3,
            "9" * 400,
            "0x10",
            "1_000",
            " 3 ",
        ]
    ),
)


def _typed(default):
  """Override texts of the field's own type (so that most reach validate), with edge values."""
  if isinstance(default, bool):
    return st.sampled_from(["True", "False"])
  if isinstance(default, int):
    return st.one_of(st.integers(-3, 9), st.sampled_from([0, -1, 2**31, 10**30])).map(str)
  if isinstance(default, float):
    return st.one_of(st.floats(-2, 2), st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e300])).map(str)
  if isinstance(default, tuple):
    return st.lists(st.integers(-1, 600), max_size=4).map(lambda xs: str(tuple(xs)))
  return texts


def _get(config, field):
  for part in field.split("."):
    config = config[part]
  return config


@st.composite
def overrides(draw):
  out = [("model.init", "random")] if draw(st.booleans()) else []
  for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4)):
    out.append(
        (
            field,
            draw(
                st.one_of(_typed(_get(DEFAULT, field)), texts) if draw(st.booleans()) else _typed(_get(DEFAULT, field))
            ),
        )
    )
  return out


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(config_arg=st.sampled_from(CONFIGS), overrides=overrides(), devices=st.sampled_from([1, 2, 3, 8]))
def test_overrides_give_only_flag_or_config_errors(config_arg, overrides, devices):
  STATS["config.inputs"] += 1
  try:
    config = _parse(config_arg, [f"--config.{f}={v}" for f, v in overrides])
  except flags.Error as e:  # absl's own: "FATAL Flags parsing error: ..." (no traceback) in main.py
    assert str(e).strip() and len(str(e)) < 2000
    STATS["config.clear_errors"] += 1
    return
  try:
    config_validation.validate(config, num_devices=devices)
  except config_validation.ConfigError as e:
    message = str(e)
    assert "\n" not in message and "config." in message, message
    STATS["config.clear_errors"] += 1
  else:
    STATS["config.accepted"] += 1
