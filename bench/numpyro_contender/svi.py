"""NumPyro's contender in ``bench/step_table.py``: the benchmark's VAE trained by NumPyro's jitted SVI.

Runs in the virtual environment that ``bench/numpyro_env.py`` creates (NumPyro and jax on CPU), never in ppgen's: a
worker that reads one JSON command a line on stdin and answers one JSON line on stdout, so that the main process can
interleave its timed runs with the PyTorch contenders'. The network is ``ppgen.models.VAE(x_dim, z_dim, hidden)``
written in jax.numpy, its weights the PyTorch ones (``W`` as ``[in, out]``): the encoder MLP gives (loc, raw scale)
of q(z|x) = N(loc, softplus(raw) + 1e-4), z ~ N(0, I), and the decoder MLP the logits of p(x|z), independent
Bernoullis; ReLU between the linear layers. The bound: ``Trace_ELBO()`` for the ELBO and ``RenyiELBO(alpha=0,
num_particles=K)`` (vectorised over particles, per data point over the data plate: the K-sample IWAE bound) for
IWAE; both are sums over the batch, reported here divided by the batch size. ``numpyro.optim.Adam`` at the
benchmark's learning rate; one ``jax.jit``-compiled ``svi.update`` per step, the batch gathered inside it, the
loss read back once an epoch, as the hand-written loop does.

Commands: ``{"cmd": "setup", "inputs": npz, "bound": "elbo" | "iwae5", "batch": B, "epochs": E, "lr": lr}`` builds
the step and compiles it (an untimed warm-up run); ``{"cmd": "run"}`` times a run of E epochs in process CPU seconds;
``{"cmd": "check", "eps": npy, "keys": R}`` gives the loss on the initial weights and the draws ``eps`` (z = loc +
scale * eps) and on R fresh keys; ``{"cmd": "quit"}``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.nn import relu, softplus
from numpyro import handlers
from numpyro.infer import SVI, RenyiELBO, Trace_ELBO


def mlp(weights: list[tuple[jnp.ndarray, jnp.ndarray]], h: jnp.ndarray) -> jnp.ndarray:
    """Linear layers with ReLU between them, none after the last (``ppgen.models.layers.mlp``)."""
    for i, (w, b) in enumerate(weights):
        h = (relu(h) if i else h) @ w + b
    return h


def layers(prefix: str, init: dict[str, np.ndarray]) -> list[tuple[jnp.ndarray, jnp.ndarray]]:
    """The parameters ``{prefix}_w{i}``, ``{prefix}_b{i}`` as NumPyro params, started at the PyTorch weights."""
    count = sum(1 for name in init if name.startswith(f"{prefix}_w"))
    return [(numpyro.param(f"{prefix}_w{i}", init[f"{prefix}_w{i}"]),
             numpyro.param(f"{prefix}_b{i}", init[f"{prefix}_b{i}"])) for i in range(count)]


def program(init: dict[str, np.ndarray], z_dim: int):
    """The VAE's model p(z) p(x|z) and guide q(z|x), each in the data plate."""

    def model(x):
        decoder = layers("dec", init)
        with numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(z_dim), jnp.ones(z_dim)).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=mlp(decoder, z)).to_event(1), obs=x)

    def guide(x):
        loc, raw = jnp.split(mlp(layers("enc", init), x), 2, axis=-1)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(loc, softplus(raw) + 1e-4).to_event(1))

    return model, guide


def objective(bound: str):
    return Trace_ELBO() if bound == "elbo" else RenyiELBO(alpha=0.0, num_particles=int(bound.removeprefix("iwae")))


class Contender:
    """One row's SVI: its data, its jitted step, and a run of ``epochs`` over the data in shuffled batches."""

    def __init__(self, inputs: str, bound: str, batch: int, epochs: int, lr: float) -> None:
        arrays = dict(np.load(inputs))
        self.x = jnp.asarray(arrays.pop("x"))
        self.init, self.bound, self.batch, self.epochs = arrays, bound, batch, epochs
        self.z_dim = arrays["dec_w0"].shape[0]
        self.model, self.guide = program(arrays, self.z_dim)
        self.svi = SVI(self.model, self.guide, numpyro.optim.Adam(lr), objective(bound))
        self.state = self.svi.init(jax.random.PRNGKey(0), self.x[:batch])
        # the batch gathered inside the compiled step: one dispatch a step
        self.update = jax.jit(lambda state, x, order, first: self.svi.update(
            state, x[jax.lax.dynamic_slice(order, (first,), (batch,))]))
        self.order = np.random.default_rng(0)

    def run(self) -> dict:
        """One timed run: process CPU seconds of ``epochs`` epochs, their steps and the last epoch's mean loss."""
        n = self.x.shape[0]
        start = time.process_time()
        for _ in range(self.epochs):
            order = jnp.asarray(self.order.permutation(n).astype(np.int32))
            total = jnp.zeros(())
            for first in range(0, n - self.batch + 1, self.batch):
                self.state, loss = self.update(self.state, self.x, order, first)
                total = total + loss
            last = float(total) / (n // self.batch) / self.batch
        seconds = time.process_time() - start
        return {"cpu_s": seconds, "steps": self.epochs * (n // self.batch), "final_loss": last}

    def check(self, eps_path: str, keys: int) -> dict:
        """The loss per point on the initial weights: on the draws ``eps`` ([K, B, z]: z = loc + scale * eps, the
        K particles in turn through the bound's own aggregation), and the mean and standard deviation over ``keys``
        fresh keys of the bound as it trains."""
        eps = jnp.asarray(np.load(eps_path))
        x = self.x[:eps.shape[1]]
        params = {name: jnp.asarray(value) for name, value in self.init.items()}
        particle = [0]

        def drawn(site):
            if site["type"] == "sample" and site["name"] == "z":
                base = site["fn"].base_dist
                return base.loc + base.scale * eps[particle[0]]
            return None

        def one_at_a_time(fn, rng_keys):
            outs = []
            for k, key in enumerate(rng_keys):
                particle[0] = k
                outs.append(fn(key))
            return jax.tree_util.tree_map(lambda *parts: jnp.stack(parts), *outs)

        elbo = objective(self.bound)
        elbo.vectorize_particles_fn = one_at_a_time
        guide = handlers.substitute(self.guide, substitute_fn=drawn)
        same = float(elbo.loss(jax.random.PRNGKey(1), params, self.model, guide, x)) / len(x)
        loss = jax.jit(lambda key: objective(self.bound).loss(key, params, self.model, self.guide, x) / len(x))
        fresh = np.array([float(loss(key)) for key in jax.random.split(jax.random.PRNGKey(2), keys)])
        return {"same_draws": same, "mean": float(fresh.mean()), "sd": float(fresh.std(ddof=1)), "keys": keys}


def versions() -> dict:
    return {"numpyro": numpyro.__version__, "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def main() -> None:
    contender = None
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "setup":
            start = time.process_time()
            contender = Contender(command["inputs"], command["bound"], command["batch"], command["epochs"],
                                  command["lr"])
            contender.run()  # compiles the step: untimed
            answer = {"compile_cpu_s": time.process_time() - start, **versions()}
        elif command["cmd"] == "run":
            answer = contender.run()
        elif command["cmd"] == "check":
            answer = contender.check(command["eps"], command["keys"])
        else:
            return
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
