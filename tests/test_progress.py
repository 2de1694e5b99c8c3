"""Long queries show their progress on a terminal, and nothing otherwise."""

from __future__ import annotations

import io

import pytest
import torch

import ppgen
import ppgen.utils.progress
from ppgen import models


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def fitted():
    ppgen.seed(0)
    x = torch.bernoulli(torch.full((40, 6), 0.3), generator=torch.Generator().manual_seed(0))
    return ppgen.fit(models.VAE(x_dim=6, z_dim=2, hidden=(8,)), x, epochs=1, progress=False), x


@pytest.mark.filterwarnings("ignore:.*Pareto k-hat:UserWarning")  # a one-epoch guide
@pytest.mark.parametrize("query", ["log_prob", "evaluate"])
def test_a_long_query_counts_its_draws_on_a_terminal(fitted, query, monkeypatch):
    fit, x = fitted
    monkeypatch.setattr(ppgen.utils.progress, "SHOWN_FROM", 1000)
    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        getattr(fit, query)(x, k=50)
        assert (f"{query}:" in stream.getvalue() and "/2.00k [" in stream.getvalue()) is shown  # K * N = 2000 draws


def test_a_small_query_prints_nothing_even_on_a_terminal(fitted, monkeypatch):
    fit, x = fitted
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    fit.log_prob(x, k=50)
    assert terminal.getvalue() == ""
