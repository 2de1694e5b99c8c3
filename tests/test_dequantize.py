"""Uniform dequantisation: a lower bound on the discrete log-probability, and the CLI's comparability flag."""

import json
import math

import pytest
import torch

from ppgen import datasets
from ppgen.cli import main
from ppgen.datasets.dequantize import dequantize, discrete_log_likelihood, grid_spacing


def test_grid_spacing_finds_the_digits_17_levels_and_refuses_continuous_data():
    assert grid_spacing(datasets.digits()) == pytest.approx(1 / 16)
    assert grid_spacing(torch.tensor([[0.0, 1.0], [1.0, 0.0]])) == 1.0
    assert grid_spacing(torch.rand(100, 3)) is None
    assert grid_spacing(torch.tensor([[0.0, 0.3, 1.0]])) is None  # not on one regular grid


def test_the_dequantised_figure_is_a_lower_bound_on_the_probability_of_the_bin():
    """For p = N(0, 1) on a grid of spacing delta, log P(x) = log (Phi(x + delta) - Phi(x)) exactly."""
    delta, x = 0.25, torch.tensor([[-1.0], [0.0], [0.75], [2.0]], dtype=torch.float64)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    draws = torch.stack([dequantize(x, delta, torch.Generator().manual_seed(s)) for s in range(4000)])
    bound = discrete_log_likelihood(normal.log_prob(draws[..., 0]), delta, 1).mean(0)
    exact = (normal.cdf(x[:, 0] + delta) - normal.cdf(x[:, 0])).log()
    assert bool((bound <= exact).all()) and bool((exact - bound < 0.02).all())
    assert bool(((draws >= x) & (draws < x + delta)).all())


def test_the_cli_says_when_figures_are_not_comparable_and_dequantises_on_request(tmp_path, capsys):
    plain, dequantised = tmp_path / "plain", tmp_path / "dequantised"
    common = ["fit", "--model", "gmm", "--data", "digits", "--epochs", "1", "--components", "2", "--no-progress"]
    assert main([*common, "--out", str(plain)]) == 0
    assert "not comparable" in capsys.readouterr().out
    assert main([*common, "--dequantize", "--out", str(dequantised)]) == 0
    first, second = (json.loads((run / "metrics.json").read_text()) for run in (plain, dequantised))
    assert first["comparable"] is False and "--dequantize" in first["comparability"]
    assert second["comparable"] is True and second["config"]["dequantize"] == pytest.approx(1 / 16)
    # a log-probability of 17-level images is negative; the log-density was not bounded by zero
    assert second["test_log_likelihood"] < 0 < first["test_log_likelihood"]
    assert main(["eval", str(dequantised)]) == 0
    again = json.loads((dequantised / "metrics.json").read_text())["eval"]
    assert again["comparable"] is True and math.isclose(again["test_log_likelihood"], second["test_log_likelihood"])


def test_dequantize_is_refused_for_a_discrete_likelihood():
    assert main(["fit", "--model", "vae", "--data", "digits", "--epochs", "1", "--dequantize"]) == 2
