"""Device placement for data parallelism over a 1-D mesh with axis "data".

DataParallel wraps a per-device function (pmap semantics: explicit collectives over "data") as
jax.shard_map over the mesh, and moves host values onto the devices: replicate (same value
everywhere), shard (leading batch axis split over devices), and back (unreplicate, host_copy,
local_rows). The update steps (update.py) stay pure functions of their arguments; this module is
the only one that knows how arrays are laid out on devices.

config.parallel="pmap" is the one alternative: DataParallel("pmap") makes a PmapDataParallel (at
the end of this module), which overrides those same methods with jax.pmap's layout (a leading
local-device axis); no other module tells the two apart.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

AXIS = "data"
REPLICATED = P()  # same value on every device (made by DataParallel.replicate)
SHARDED = P(AXIS)  # leading axis split over devices (made by DataParallel.shard)
BROADCAST = None  # a plain host value (numpy / python scalar), same on every process, no device axis
PARALLEL_KINDS = ("shard_map", "pmap")  # DataParallel kinds (config.parallel)


def _is_spec(x) -> bool:
  return x is None or isinstance(x, P)


class DataParallel:
  """Data parallelism over a 1-D mesh with axis "data" (all devices of all processes by default),
  as jax.shard_map: arrays are global jax.Arrays; replicated values carry no device axis.

  Specs for `map`: REPLICATED (from replicate()), SHARDED (from shard()), BROADCAST (a plain host
  value); a spec may be a prefix of its argument's pytree, as in jax.shard_map.
  kind="pmap" makes a PmapDataParallel instead (same methods, jax.pmap's layout).
  """

  kind = "shard_map"

  def __new__(cls, kind: str = "shard_map", devices=None):
    del devices  # __init__'s
    if kind not in PARALLEL_KINDS:
      raise ValueError(f"parallel kind {kind!r} not in {PARALLEL_KINDS}")
    if cls is DataParallel and kind == "pmap":
      cls = PmapDataParallel
    return super().__new__(cls)

  def __init__(self, kind: str = "shard_map", devices=None):
    del kind  # the class (__new__)
    self.devices = list(jax.devices() if devices is None else devices)
    self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
    self.mesh = jax.sharding.Mesh(np.array(self.devices), (AXIS,))

  @property
  def size(self) -> int:
    """Number of devices over all processes."""
    return len(self.devices)

  @property
  def local_size(self) -> int:
    return len(self.local_devices)

  def _global(self, x, spec: P):
    sharding = NamedSharding(self.mesh, spec)
    x = np.array(x)  # a host copy: the update donates its state, which must not alias the caller's
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    if spec == REPLICATED:
      return jax.make_array_from_process_local_data(sharding, np.asarray(x), np.shape(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  def replicate(self, tree):
    """Same value on every device (every process must pass the same value)."""
    return jax.tree.map(lambda x: self._global(x, REPLICATED), tree)

  def unreplicate(self, tree):
    """One copy of a replicated tree (a single-device array per leaf), e.g. a step's metrics."""
    return jax.tree.map(lambda x: x.addressable_shards[0].data if isinstance(x, jax.Array) else x, tree)

  def _local_batch(self, x) -> np.ndarray:
    x = np.asarray(x)
    if x.shape[0] % self.local_size:
      raise ValueError(f"batch axis {x.shape[0]} not divisible by {self.local_size} local devices")
    return x

  def shard(self, batch):
    """Host-local batch (leaves [B_local, ...], B_local divisible by local_size) -> device layout:
    a global array of B_local * process_count rows (process p holds its own rows)."""
    return jax.tree.map(lambda x: self._global(self._local_batch(x), SHARDED), batch)

  def local_rows(self, x) -> np.ndarray:
    """This process's rows [B_local, ...] of a SHARDED output, in batch order (host numpy)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
      return np.concatenate([np.asarray(s.data) for s in shards])
    return np.asarray(x)

  def map(self, fn: Callable, *, in_specs, out_specs, donate_argnums=()) -> Callable:
    """Jit `fn` (a per-device function using collectives over "data") over all devices.

    in_specs: one spec (tree prefix) per positional argument; out_specs: a spec tree prefix of the
    output. `fn` has pmap semantics (shard_map runs with check_vma=False): nothing is reduced
    implicitly, so gradients of replicated parameters must be psum-ed / pmean-ed by `fn`, and
    values returned as REPLICATED must really be equal on all devices.
    """
    to_p = lambda t: jax.tree.map(lambda s: P() if s is None else s, t, is_leaf=_is_spec)  # noqa: E731
    mapped = jax.shard_map(
        fn, mesh=self.mesh, in_specs=tuple(to_p(s) for s in in_specs), out_specs=to_p(out_specs), check_vma=False
    )
    return jax.jit(mapped, donate_argnums=donate_argnums)


class PmapDataParallel(DataParallel):
  """config.parallel="pmap": the same interface over jax.pmap. Replicated values carry a leading
  local-device axis; sharded ones are [local_devices, B_local / local_devices, ...]; under `map`
  every REPLICATED / SHARDED value has that device axis, BROADCAST inputs do not."""

  kind = "pmap"

  def replicate(self, tree):
    local_mesh = jax.sharding.Mesh(np.array(self.local_devices), (AXIS,))
    stack = lambda x: np.array(np.broadcast_to(np.asarray(x), (self.local_size,) + np.shape(x)))  # noqa: E731
    return jax.tree.map(lambda x: jax.device_put(stack(x), NamedSharding(local_mesh, SHARDED)), tree)

  def unreplicate(self, tree):
    return jax.tree.map(lambda x: x[0], tree)

  def shard(self, batch):
    def one(x):
      x = self._local_batch(x)
      return x.reshape((self.local_size, x.shape[0] // self.local_size) + x.shape[1:])

    return jax.tree.map(one, batch)

  def local_rows(self, x) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape((-1,) + x.shape[2:])

  def map(self, fn: Callable, *, in_specs, out_specs, donate_argnums=()) -> Callable:
    in_axes = tuple(
        jax.tree.map(lambda s: None if s is None else 0, s, is_leaf=_is_spec) if s is not None else None
        for s in in_specs
    )
    out_axes = jax.tree.map(lambda s: 0, out_specs, is_leaf=_is_spec)
    return jax.pmap(
        fn, axis_name=AXIS, in_axes=in_axes, out_axes=out_axes, devices=self.devices, donate_argnums=donate_argnums
    )


def host_copy(dp: DataParallel, tree):
  """One host (numpy) copy of a replicated tree, e.g. the train state for a checkpoint."""
  return jax.tree.map(np.asarray, jax.device_get(dp.unreplicate(tree)))


def all_hosts_rows(tree):
  """Every process's host arrays [b, ...] concatenated along axis 0 in process order, [P * b, ...]
  (a collective: every process calls it, with the same shapes); the tree itself on one process."""
  if jax.process_count() == 1:
    return tree
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
