"""The reader check before training: one real request to each reader a run will call, so that an
unreachable or misconfigured reader stops the run with one line before the supervised warm-up; and
the stop message of a phase that has no checkpoint yet. The entry point's stop before the warm-up:
tests/test_main.py."""

import http.server
import threading
import types

import numpy as np
import pytest

from rrpo_jax.train import checkpoint as ckpt_lib
from rrpo_jax import config as config_lib
from rrpo_jax.train import loop
from rrpo_jax.reader import ReaderError, ReaderUnavailableError
from rrpo_jax.reader.server import free_port
from rrpo_jax.train.reader_pool import Readers


def _config(**reader):
  c = config_lib.get_config()
  c.reader.backend = "fake"
  for k, v in reader.items():
    setattr(c.reader, k, v)
  return c


def _dead_url() -> str:
  return f"http://127.0.0.1:{free_port()}/v1"  # nobody listens: connection refused at once


class _NotJson(http.server.BaseHTTPRequestHandler):
  """An HTTP server that is not an OpenAI-compatible reader: 200 with an HTML page."""

  def do_POST(self):  # pylint: disable=invalid-name
    self.rfile.read(int(self.headers.get("Content-Length", 0)))
    self.server.posts += 1
    body = b"<html>it works</html>"
    self.send_response(200)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


def test_a_working_reader_is_checked_once_and_nothing_is_cached(tmp_path):
  with Readers(_config(), str(tmp_path)) as readers:
    readers.check("train")
    readers.check("eval")  # the same settings: one reader, one check
    step = readers.scoring("train")
    assert readers.scoring("eval") is step
    assert len(step.cache) == 0 and step.run_stats()["reader_calls"] == 0  # the check bypasses cache and counts


def test_an_unreachable_reader_names_its_section_backend_url_and_model(tmp_path):
  url = _dead_url()
  c = _config(backend="openai", base_url=url, model="served-model", max_retries=1, backoff_s=0.01)
  with Readers(c, str(tmp_path)) as readers:
    with pytest.raises(ReaderUnavailableError) as info:
      readers.check("train")
  message = str(info.value)
  assert message.startswith(f"config.reader (backend openai, base_url {url}, model served-model): the reader check")
  assert "failed 2 attempts" in message and "\n" not in message


def test_a_different_evaluation_reader_is_checked_on_its_own(tmp_path):
  url = _dead_url()
  c = _config()
  c.eval.reader.backend, c.eval.reader.base_url, c.eval.reader.max_retries = "openai", url, 0
  with Readers(c, str(tmp_path)) as readers:
    readers.check("train")  # the fake training reader works
    with pytest.raises(ReaderError, match=rf"^config\.eval\.reader \(backend openai, base_url {url}"):
      readers.check("eval")


def test_a_server_that_is_not_a_reader_is_refused(tmp_path):
  srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotJson)
  srv.posts = 0
  threading.Thread(target=srv.serve_forever, daemon=True).start()
  url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
  try:
    with Readers(_config(backend="openai", base_url=url), str(tmp_path)) as readers:
      with pytest.raises(ReaderError, match=r"\(backend openai, base_url .*got no usable answer: malformed reply"):
        readers.check("train")
  finally:
    srv.shutdown()
    srv.server_close()
  assert srv.posts == 1  # a malformed reply is not retried


class _Loader:

  def state(self):
    return {}


def test_stop_message_without_a_checkpoint(tmp_path):
  """A reader failure before the first checkpoint of a phase: the message says so (not "(None)")."""
  ckpt = ckpt_lib.Checkpointer(str(tmp_path / "rrpo"), async_save=False)
  config = types.SimpleNamespace(progress=False, log_every=1, checkpoint=types.SimpleNamespace(every_steps=1))

  def step_fn(state, batch, step):
    raise ReaderUnavailableError("reader at http://x failed 6 attempts")

  with pytest.raises(ReaderUnavailableError) as info:
    loop.run(
        "rrpo",
        np.zeros(2),
        iter([{}] * 3),
        step_fn,
        steps=3,
        start=0,
        key=ckpt_lib.key_from_data(np.zeros(2, np.uint32)),
        ckpt=ckpt,
        dp=None,
        loader=_Loader(),
        writer=None,
        config=config,
    )
  message = str(info.value)
  assert "None" not in message
  assert f"Training stopped at rrpo step 1; no rrpo checkpoint was written yet ({tmp_path / 'rrpo'})" in message
