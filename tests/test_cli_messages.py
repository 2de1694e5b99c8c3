"""The library's messages in the terms of the command line (:mod:`ppgen.cli.messages`): every Python spelling of an
offered backend in the library's sources becomes its flag, and the refusals a CLI user meets say what to type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ppgen
from ppgen.cli import main, messages
from ppgen.training import registry

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(ppgen.__file__).resolve().parent.parent


@pytest.mark.parametrize("python, cli", [
    ("use inference.ELBO() or inference.IWAE()", "use --inference elbo or --inference iwae"),
    ("fit it by inference.MAP() or ELBO()", "fit it by inference.MAP() or --inference elbo"),
    ("IWAE(k=5, estimator='standard') weights one draw", "--inference iwae weights one draw"),
    ("IWAE(k=7, estimator='dreg') needs", "--inference iwae --k 7 --estimator dreg needs"),
    ("ELBO(num_particles=3, kl='analytic')", "--inference elbo --k 3 --kl analytic"),
    ("inference.ELBO(latent_mmd=...)", "--inference elbo --latent-mmd ..."),
    ("Adversarial(critic=None, critic_steps=1, critic_lr=None, divergence='kl', nonsaturating=False)",
     "--inference adversarial --divergence kl --no-nonsaturating"),
    ("ask fit.posterior(x, method='nuts') for them", "ask ppgen posterior --method nuts for them"),
    ("ask fit.log_prob(x)", "ask ppgen eval"),
    ("ppgen.fit(..., distributed=True)", "ppgen fit --distributed"),
    ("draw samples with mean=False", "draw samples without --mean"),
    ("call sample without mean=True", "call sample without --mean"),
    ("likelihood='gaussian' and scale=0.5", "--likelihood gaussian and scale=0.5"),
    ("alpha must be a finite number", "--alpha must be a finite number"),
    ("k must be at least 2 for VIMCO", "--k must be at least 2 for VIMCO"),
    ("by ppgen.fit(..., inference=inference.NUTS())", "by ppgen.fit(..., inference=inference.NUTS())"),
    ("the k-hat of the weights, x_dim=64", "the k-hat of the weights, x_dim=64"),
    ("folder runs/lr=0.1/seed=3 not found; lr=0.1/fit.pt", "folder runs/lr=0.1/seed=3 not found; lr=0.1/fit.pt"),
])
def test_a_python_spelling_becomes_the_flag(python, cli):
    assert messages.in_cli_terms(python) == cli


def test_every_offered_backend_spelt_in_the_library_reads_as_a_flag():
    """Each ``inference.X(...)`` of an offered backend written in the library's sources (its messages among them)
    comes out as ``--inference x``: none is left in Python."""
    spelt = re.compile(rf"(?:inference\.)({'|'.join(messages.BACKENDS)})\([^()]*\)")
    found = []
    for folder in ("ppgen", "inference", "models"):
        for path in (ROOT / folder).rglob("*.py"):
            found += [m[0] for m in spelt.finditer(path.read_text())]
    assert len(found) > 30
    for text in found:
        translated = messages.in_cli_terms(text)
        assert translated.startswith("--inference ") and "(" not in translated, (text, translated)


def test_the_backends_are_the_registrys():
    named = registry.INFERENCE | registry.ENERGY_INFERENCE
    assert messages.BACKENDS == {cls.__name__: name for name, cls in named.items()}


@pytest.mark.parametrize("argv, said", [
    (["fit", "--model", "vae", "--data", "moons", "--inference", "mle"], "use --inference elbo or --inference iwae"),
    (["fit", "--model", "generator", "--data", "moons", "--inference", "elbo"],
     "--inference mmd, --inference adversarial or --inference wasserstein"),
    (["fit", "--model", "vae", "--data", "moons", "--inference", "adversarial"],
     "a likelihood-based backend such as --inference elbo"),
])
def test_a_refusal_by_the_library_says_what_to_type(argv, said, tmp_path, capsys):
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ppgen: error: ") and err.count("\n") == 1, err
    assert said in err and "inference." not in err and "()" not in err, err
    assert not (tmp_path / "run").exists()


def test_sample_mean_of_a_flow_says_to_leave_the_flag_out(tmp_path, capsys):
    """A flow's likelihood has no closed-form mean: ``--mean`` is refused in the flag's terms, and nothing written."""
    run = tmp_path / "flow"
    assert main(["fit", "--model", "realnvp", "--data", "moons", "--epochs", "1", "--batch-size", "500",
                 "--eval-k", "10", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "4", "--mean"]) == 1
    err = capsys.readouterr().err
    assert err == ("ppgen: error: --mean returns E[x | z], but the distribution of the data site 'x', "
                   "FlowDistribution, has no closed-form mean: draw samples without --mean\n")
    assert not list(run.glob("samples-4*"))
