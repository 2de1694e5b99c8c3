"""Implicit models: programs whose data site is a point mass, x = G(z), so that p(x) has no density to evaluate.

A generator is written as any other program, its data site observed at the data inside the data plate, but with a
``Delta`` at the network's output::

    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(torch.zeros(z_dim), 1.0).to_event(1))
        pyro.sample("x", dist.Delta(G(z), event_dim=1), obs=x)

with z drawn from its prior alone: no guide draws it (a program whose guide draws every latent is a latent-variable
program, its point mass holding on the guide's draws, as ``DequantizedFlow``'s x = floor(v) with v drawn in x's bin).
Run forward with the observation released, it draws x = G(z), z ~ p(z): that is all it answers (``sample``). Its
log-density at the data is 0 where G(z) = x exactly and -inf elsewhere, which no likelihood-based objective or
query can use, so each refuses such a program by name (:func:`check_density`), pointing to the objectives that
compare samples with data instead. A ``pyro.deterministic`` site is no data site: it records a value and observes
nothing (its log-density is masked out), so ppgen does not count it as observed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ppgen.program.structure import Structure

#: the objectives that fit a model without evaluating its density, as a message names them.
LIKELIHOOD_FREE = "inference.MMD(), inference.Adversarial() or inference.Wasserstein()"


def check_density(structure: Structure, needs: str) -> None:
    """A ``ValueError`` where the program is implicit (``structure.implicit``), naming ``needs`` (the objective or query
    that would evaluate its log-density), the objectives that fit such a model and the query it answers."""
    if structure.implicit:
        raise ValueError(
            f"{needs} needs the model's density, but the model is implicit: it observes its data through a point "
            f"mass, x = G(z) (a Delta), which has no density at the data. Fit it by a likelihood-free objective, "
            f"{LIKELIHOOD_FREE}; of the queries it answers sample(n), and evaluate(x) by its sample metrics alone")
