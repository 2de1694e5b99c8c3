"""Shared fixtures: every test starts from the same seeds and an empty global param store."""

import pyro
import pytest


@pytest.fixture(autouse=True)
def seeded():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
