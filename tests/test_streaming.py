"""Data sets read a batch at a time: a map-style Dataset, an IterableDataset, a DataLoader with workers; each fits to
the very parameters of the in-memory fit that visits the same rows in the same batches."""

from __future__ import annotations


import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

import ppgen
from ppgen import inference
from ppgen.run.signals import Interrupted
from programs import LOSS_CALLS, Rows, StopAt, coin_rows, small_vae

SETTINGS = dict(epochs=2, batch_size=16, progress=False, seed=0)


@pytest.fixture
def binary():
    return coin_rows(53)


class Stream(IterableDataset):
    """The rows of x in the given order, as a stream; with ``length``, it says how many it holds."""

    def __init__(self, x: torch.Tensor, length: bool = True) -> None:
        self.x, self.length = x, length

    def __iter__(self):
        return iter(self.x)

    def __len__(self) -> int:
        if not self.length:
            raise TypeError("a stream of unknown length")
        return len(self.x)


def same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("wrap", [Rows, lambda x: DataLoader(Rows(x), batch_size=16, num_workers=2)],
                         ids=["dataset", "loader-with-workers"])
def test_a_map_style_data_set_fits_as_the_same_rows_in_memory(binary, wrap):
    """The seeded order over len(dataset) indices, loaded by index (by worker processes through a DataLoader):
    the same batches, the same draws, bitwise the same parameters and history as the tensor in memory."""
    memory = ppgen.fit(small_vae(), binary, inference=inference.IWAE(k=3), **SETTINGS)
    streamed = ppgen.fit(small_vae(), wrap(binary), inference=inference.IWAE(k=3), **SETTINGS)
    assert same_parameters(streamed.model, memory.model) and streamed.history == memory.history


def test_aligned_inputs_stream_as_tuples():
    """Items (x, y) batch as the model's two inputs: a per-class Bernoulli fitted by MLE on a Dataset equals it on
    the tensors."""

    def model(x, y):
        logits = pyro.param("logits", torch.zeros(2, 3))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(logits=logits[y]).to_event(1), obs=x)

    g = torch.Generator().manual_seed(2)
    x, y = torch.bernoulli(torch.full((40, 3), 0.4), generator=g), torch.randint(0, 2, (40,), generator=g)
    memory = ppgen.fit((model, None), (x, y), inference=inference.MLE(), lr=0.1, **SETTINGS)
    streamed = ppgen.fit((model, None), Rows(x, y), inference=inference.MLE(), lr=0.1, **SETTINGS)
    assert torch.equal(streamed.params["logits"], memory.params["logits"])


def test_a_stream_in_the_in_memory_order_fits_as_in_memory(binary):
    """An IterableDataset that yields the rows in the order the in-memory fit draws for its one epoch: the same
    batches of 16, so the same fit (N from the stream's len)."""
    order = torch.randperm(len(binary), generator=torch.Generator().manual_seed(0))
    settings = {**SETTINGS, "epochs": 1}
    memory = ppgen.fit(small_vae(), binary, **settings)
    streamed = ppgen.fit(small_vae(), Stream(binary[order]), **settings)
    assert same_parameters(streamed.model, memory.model) and streamed.history == memory.history
    looped = ppgen.fit(small_vae(), DataLoader(Stream(binary[order]), batch_size=16), **settings)
    assert same_parameters(looped.model, memory.model)


class SharedMean(nn.Module):
    """A global latent mu ~ N(0, I) outside the data plate: its terms are shared out as 1/N per point."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(6))

    def model(self, x):
        mu = pyro.sample("mu", dist.Normal(torch.zeros(6), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)

    def guide(self, x):
        pyro.sample("mu", dist.Normal(self.loc, 1.0).to_event(1))


def test_global_latents_need_the_length_of_a_stream(binary):
    with pytest.raises(ValueError, match=r"the stream has no length, but latent site\(s\) \('mu',\) sit outside"):
        ppgen.fit(SharedMean(), Stream(binary, length=False), steps_per_epoch=4, **SETTINGS)
    fit = ppgen.fit(SharedMean(), Stream(binary, length=True), **SETTINGS)  # N known: fine
    assert len(fit.history) == 2
    local = ppgen.fit(small_vae(), Stream(binary, length=False), steps_per_epoch=4, **SETTINGS)  # no global latent
    assert len(local.history) == 2


def test_a_loader_with_another_batch_size_is_refused(binary):
    with pytest.raises(ValueError, match=r"DataLoader's batch_size \(8\) and fit's batch_size \(16\) differ"):
        ppgen.fit(small_vae(), DataLoader(Rows(binary), batch_size=8), **SETTINGS)


@pytest.mark.parametrize("stop_at", [2, 5])  # mid-epoch (4 batches an epoch), and in the second epoch
@pytest.mark.parametrize("make", [Rows, Stream], ids=["dataset", "stream"])
def test_a_stopped_streamed_run_resumes_at_its_batch(binary, tmp_path, stop_at, make):
    """Resumed mid-epoch, a Dataset continues in its saved order and a repeatable stream skips the batches done:
    the parameters of a run never stopped, bitwise."""
    LOSS_CALLS.clear()
    whole = ppgen.fit(small_vae(), make(binary), inference=StopAt(), **SETTINGS)
    LOSS_CALLS.clear()
    backend = StopAt(signal_at=stop_at)
    with pytest.raises(Interrupted):
        ppgen.fit(small_vae(), make(binary), inference=backend, out=tmp_path / "run", checkpoint_every=10, **SETTINGS)
    resumed = ppgen.fit(small_vae(), make(binary), inference=backend, out=tmp_path / "run", resume=True, **SETTINGS)
    assert same_parameters(resumed.model, whole.model) and resumed.history == whole.history
    assert len(LOSS_CALLS) == 8  # each of the 2 x 4 steps ran once
