"""Shared fixtures: every test starts from the same seeds and an empty global param store."""

import pyro
import pytest
import torch

from ppgen.program import fastpath
from ppgen.training.update import AdamUpdate


@pytest.fixture(autouse=True)
def seeded():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield


@pytest.fixture
def float64():
    """float64 as torch's default dtype for the test, where exactness to 1e-12 needs it throughout (parameters a
    program makes on its first run included); a module asks for it with ``pytest.mark.usefixtures("float64")``."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


@pytest.fixture(scope="module")
def one_thread():
    """Small networks on a shared machine: one torch thread, not several fighting for the cores; a module asks for
    it with ``pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def uncompiled(monkeypatch, tmp_path):
    """compile=True with the traced graph standing for inductor's compilation of it; the records of these
    compilations, in milliseconds, go to a cache folder of the test's own (``TORCHINDUCTOR_CACHE_DIR``), never the
    user's, where a later fit would take them for real compilations."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setattr(fastpath, "_inductor", lambda graph, inputs: graph)


@pytest.fixture
def applied(monkeypatch):
    """A list that grows by one each time a step's update is applied (:meth:`AdamUpdate.apply`)."""
    calls = []
    apply = AdamUpdate.apply
    monkeypatch.setattr(AdamUpdate, "apply", lambda self, outputs, good: calls.append(1) or apply(self, outputs, good))
    return calls
