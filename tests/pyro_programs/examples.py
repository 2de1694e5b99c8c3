"""Pyro's own examples and tutorials, their models and guides verbatim, on small synthetic data of the right kind.

For tests/test_pyro_examples.py. Each program below is copied from pyro-ppl/pyro (the 1.9 line; the installed Pyro is
1.9.2) as Pyro wrote it, black formatting and comments included, and cited above it by its source file. What is
adapted is only what is not the program: argument parsing (an ``argparse.Namespace`` of small sizes), data loading
(no downloads: data of the same kind, shapes and dtypes, generated here), logging, plotting and the training loops.
A program that reads module globals (the tutorials' ``T``, ``alpha``, ``N``, the flow ``flow``, eight schools' ``J``)
is written inside a builder whose locals are those globals, so that each test gets a fresh program. Layer widths and
data sizes are made small; where a width is a hard-coded attribute (sparse gamma DEF) it is set on the instance.

Every builder returns ``(program, model, guide)``: what a Pyro user hands to ``ppgen.fit``, and the two callables
Pyro's own ELBO is given.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from inspect import isclass
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
import zuko
from pyro import poutine
from pyro.contrib.zuko import ZukoToPyro
from pyro.distributions import Beta, Categorical, Dirichlet, Gamma, MultivariateNormal, Poisson, Uniform
from pyro.distributions.util import broadcast_shape
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoNormal, init_to_feasible
from pyro.util import ignore_jit_warnings
from torch import Tensor
from torch.distributions import constraints, transforms
from torch.nn.functional import softplus

Program = tuple[Any, Callable, Callable]


@dataclass(frozen=True)
class Example:
    """One of Pyro's example programs and how Pyro evaluates it.

    Attributes:
        name: the test id.
        source: the file of pyro-ppl/pyro the program is copied from.
        make: builds the program afresh: ``(what ppgen gets, model, guide)``.
        data: builds the data as Pyro's example passes it: a tuple of tensors, given positionally.
        points: the number of data points N (the size of the program's data plate), the width of ppgen's [K, N].
        enum: whether Pyro's reference is ``TraceEnum_ELBO`` (else ``Trace_ELBO``).
        max_plate_nesting: what Pyro is told.
        exact: whether one seed gives both sides identical draws and starting values; else (random starting values
            drawn by the guide, AutoGuides' ``init_to_median``, a random subsample, a guide that enumerates) the two
            are compared by Monte Carlo means over independent seeds, a fresh program each.
        broadcasts: whether the program broadcasts over a particle dimension (else ppgen may warn that it runs one
            particle at a time).
        guide_enumerates: whether the guide enumerates a discrete site (ppgen's ELBO is then read from the first
            loss of a full-batch ``ppgen.fit``).
        batch_size: the mini-batch of the short fit (``None``: the program's own choice, the whole data set for a
            program whose data plate has a fixed size and no subsample).
    """

    name: str
    source: str
    make: Callable[[], Program]
    data: Callable[[], tuple[Tensor, ...]]
    points: int
    enum: bool = False
    max_plate_nesting: int = 1
    exact: bool = True
    broadcasts: bool = True
    guide_enumerates: bool = False
    batch_size: int | None = None


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def built(seed: int, build: Callable[[], Any]) -> Any:
    """``build()`` with the global RNG at ``seed`` (network weights drawn by ``nn.Linear`` and ``normal_``), the
    caller's RNG left where it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


# ------------------------------------------------------------------------------------------------- examples/lda.py
LDA_ARGS = argparse.Namespace(num_topics=3, num_words=8, num_docs=6, num_words_per_doc=5, layer_sizes="4")


def lda_functions() -> tuple[Callable, Callable, Callable]:
    """examples/lda.py's model, make_predictor and parametrized_guide, verbatim."""
    # This is a fully generative model of a batch of documents.
    # data is a [num_words_per_doc, num_documents] shaped array of word ids
    # (specifically it is not a histogram). We assume in this simple example
    # that all documents have the same number of words.
    def model(data=None, args=None, batch_size=None):
        # Globals.
        with pyro.plate("topics", args.num_topics):
            topic_weights = pyro.sample(
                "topic_weights", dist.Gamma(1.0 / args.num_topics, 1.0)
            )
            topic_words = pyro.sample(
                "topic_words", dist.Dirichlet(torch.ones(args.num_words) / args.num_words)
            )

        # Locals.
        with pyro.plate("documents", args.num_docs) as ind:
            if data is not None:
                with pyro.util.ignore_jit_warnings():
                    assert data.shape == (args.num_words_per_doc, args.num_docs)
                data = data[:, ind]
            doc_topics = pyro.sample("doc_topics", dist.Dirichlet(topic_weights))
            with pyro.plate("words", args.num_words_per_doc):
                # The word_topics variable is marginalized out during inference,
                # achieved by specifying infer={"enumerate": "parallel"} and using
                # TraceEnum_ELBO for inference. Thus we can ignore this variable in
                # the guide.
                word_topics = pyro.sample(
                    "word_topics",
                    dist.Categorical(doc_topics),
                    infer={"enumerate": "parallel"},
                )
                data = pyro.sample(
                    "doc_words", dist.Categorical(topic_words[word_topics]), obs=data
                )

        return topic_weights, topic_words, data

    # We will use amortized inference of the local topic variables, achieved by a
    # multi-layer perceptron. We'll wrap the guide in an nn.Module.
    def make_predictor(args):
        layer_sizes = (
            [args.num_words]
            + [int(s) for s in args.layer_sizes.split("-")]
            + [args.num_topics]
        )
        logging.info("Creating MLP with sizes {}".format(layer_sizes))
        layers = []
        for in_size, out_size in zip(layer_sizes, layer_sizes[1:]):
            layer = nn.Linear(in_size, out_size)
            layer.weight.data.normal_(0, 0.001)
            layer.bias.data.normal_(0, 0.001)
            layers.append(layer)
            layers.append(nn.Sigmoid())
        layers.append(nn.Softmax(dim=-1))
        return nn.Sequential(*layers)

    def parametrized_guide(predictor, data, args, batch_size=None):
        # Use a conjugate guide for global variables.
        topic_weights_posterior = pyro.param(
            "topic_weights_posterior",
            lambda: torch.ones(args.num_topics),
            constraint=constraints.positive,
        )
        topic_words_posterior = pyro.param(
            "topic_words_posterior",
            lambda: torch.ones(args.num_topics, args.num_words),
            constraint=constraints.greater_than(0.5),
        )
        with pyro.plate("topics", args.num_topics):
            pyro.sample("topic_weights", dist.Gamma(topic_weights_posterior, 1.0))
            pyro.sample("topic_words", dist.Dirichlet(topic_words_posterior))

        # Use an amortized guide for local variables.
        pyro.module("predictor", predictor)
        with pyro.plate("documents", args.num_docs, batch_size) as ind:
            data = data[:, ind]
            # The neural network will operate on histograms rather than word
            # index vectors, so we'll convert the raw data to a histogram.
            counts = torch.zeros(args.num_words, ind.size(0)).scatter_add(
                0, data, torch.ones(data.shape)
            )
            doc_topics = predictor(counts.transpose(0, 1))
            pyro.sample("doc_topics", dist.Delta(doc_topics, event_dim=1))

    return model, make_predictor, parametrized_guide


def lda() -> Program:
    """examples/lda.py with ``args`` the example's Namespace of 3 topics, 8 words, 6 documents of 5 words and one
    hidden layer of 4 (published: 8, 1024, 1000, 64 and "100-100"). As main() gives it to SVI: ``guide =
    functools.partial(parametrized_guide, predictor)``, ``args`` bound as ``svi.step(data, args=args)`` binds it (a
    ``functools.partial`` of each), the mini-batch (the guide's ``batch_size``) left to the caller."""
    model, make_predictor, parametrized_guide = lda_functions()
    predictor = built(0, lambda: make_predictor(LDA_ARGS))
    lda_model = functools.partial(model, args=LDA_ARGS)
    guide = functools.partial(parametrized_guide, predictor, args=LDA_ARGS)
    return (lda_model, guide), lda_model, guide


def lda_data() -> tuple[Tensor]:
    """main(): ``true_topic_weights, true_topic_words, data = model(args=args)`` under seed 0: [num_words_per_doc,
    num_docs] word ids (int64), documents at dim -1 and words at dim -2, as the example writes them."""
    model, _, _ = lda_functions()
    with torch.random.fork_rng():
        pyro.set_rng_seed(0)
        with poutine.block():
            _, _, data = model(args=LDA_ARGS)
    assert data.dtype == torch.int64 and data.shape == (LDA_ARGS.num_words_per_doc, LDA_ARGS.num_docs)
    return (data,)


# ------------------------------------------------------------------------------------ examples/sparse_gamma_def.py
# helper for initializing variational parameters
def rand_tensor(shape, mean, sigma):
    return mean * torch.ones(shape) + sigma * torch.randn(shape)


class SparseGammaDEF:
    def __init__(self):
        # define the sizes of the layers in the deep exponential family
        self.top_width = 100
        self.mid_width = 40
        self.bottom_width = 15
        self.image_size = 64 * 64
        # define hyperparameters that control the prior
        self.alpha_z = torch.tensor(0.1)
        self.beta_z = torch.tensor(0.1)
        self.alpha_w = torch.tensor(0.1)
        self.beta_w = torch.tensor(0.3)
        # define parameters used to initialize variational parameters
        self.alpha_init = 0.5
        self.mean_init = 0.0
        self.sigma_init = 0.1

    # define the model
    def model(self, x):
        x_size = x.size(0)

        # sample the global weights
        with pyro.plate("w_top_plate", self.top_width * self.mid_width):
            w_top = pyro.sample("w_top", Gamma(self.alpha_w, self.beta_w))
        with pyro.plate("w_mid_plate", self.mid_width * self.bottom_width):
            w_mid = pyro.sample("w_mid", Gamma(self.alpha_w, self.beta_w))
        with pyro.plate("w_bottom_plate", self.bottom_width * self.image_size):
            w_bottom = pyro.sample("w_bottom", Gamma(self.alpha_w, self.beta_w))

        # sample the local latent random variables
        # (the plate encodes the fact that the z's for different datapoints are conditionally independent)
        with pyro.plate("data", x_size):
            z_top = pyro.sample(
                "z_top",
                Gamma(self.alpha_z, self.beta_z).expand([self.top_width]).to_event(1),
            )
            # note that we need to use matmul (batch matrix multiplication) as well as appropriate reshaping
            # to make sure our code is fully vectorized
            w_top = (
                w_top.reshape(self.top_width, self.mid_width)
                if w_top.dim() == 1
                else w_top.reshape(-1, self.top_width, self.mid_width)
            )
            mean_mid = torch.matmul(z_top, w_top)
            z_mid = pyro.sample(
                "z_mid", Gamma(self.alpha_z, self.beta_z / mean_mid).to_event(1)
            )

            w_mid = (
                w_mid.reshape(self.mid_width, self.bottom_width)
                if w_mid.dim() == 1
                else w_mid.reshape(-1, self.mid_width, self.bottom_width)
            )
            mean_bottom = torch.matmul(z_mid, w_mid)
            z_bottom = pyro.sample(
                "z_bottom", Gamma(self.alpha_z, self.beta_z / mean_bottom).to_event(1)
            )

            w_bottom = (
                w_bottom.reshape(self.bottom_width, self.image_size)
                if w_bottom.dim() == 1
                else w_bottom.reshape(-1, self.bottom_width, self.image_size)
            )
            mean_obs = torch.matmul(z_bottom, w_bottom)

            # observe the data using a poisson likelihood
            pyro.sample("obs", Poisson(mean_obs).to_event(1), obs=x)

    # define our custom guide a.k.a. variational distribution.
    # (note the guide is mean field gamma)
    def guide(self, x):
        x_size = x.size(0)

        # define a helper function to sample z's for a single layer
        def sample_zs(name, width):
            alpha_z_q = pyro.param(
                "alpha_z_q_%s" % name,
                lambda: rand_tensor((x_size, width), self.alpha_init, self.sigma_init),
            )
            mean_z_q = pyro.param(
                "mean_z_q_%s" % name,
                lambda: rand_tensor((x_size, width), self.mean_init, self.sigma_init),
            )
            alpha_z_q, mean_z_q = softplus(alpha_z_q), softplus(mean_z_q)
            pyro.sample(
                "z_%s" % name, Gamma(alpha_z_q, alpha_z_q / mean_z_q).to_event(1)
            )

        # define a helper function to sample w's for a single layer
        def sample_ws(name, width):
            alpha_w_q = pyro.param(
                "alpha_w_q_%s" % name,
                lambda: rand_tensor((width), self.alpha_init, self.sigma_init),
            )
            mean_w_q = pyro.param(
                "mean_w_q_%s" % name,
                lambda: rand_tensor((width), self.mean_init, self.sigma_init),
            )
            alpha_w_q, mean_w_q = softplus(alpha_w_q), softplus(mean_w_q)
            pyro.sample("w_%s" % name, Gamma(alpha_w_q, alpha_w_q / mean_w_q))

        # sample the global weights
        with pyro.plate("w_top_plate", self.top_width * self.mid_width):
            sample_ws("top", self.top_width * self.mid_width)
        with pyro.plate("w_mid_plate", self.mid_width * self.bottom_width):
            sample_ws("mid", self.mid_width * self.bottom_width)
        with pyro.plate("w_bottom_plate", self.bottom_width * self.image_size):
            sample_ws("bottom", self.bottom_width * self.image_size)

        # sample the local latent random variables
        with pyro.plate("data", x_size):
            sample_zs("top", self.top_width)
            sample_zs("mid", self.mid_width)
            sample_zs("bottom", self.bottom_width)


def sparse_gamma_def(guide_kind: str) -> Callable[[], Program]:
    """The example's three layers made 3, 2 and 2 wide over images of 6 pixels (published: 100, 40, 15 and 4096);
    ``guide_kind``: the example's "custom" guide, its "auto" guide AutoDiagonalNormal(model,
    init_loc_fn=init_to_feasible), or AutoNormal (the issue's; init_to_feasible is its default)."""
    def make() -> Program:
        sparse_gamma_def = SparseGammaDEF()
        sparse_gamma_def.top_width, sparse_gamma_def.mid_width, sparse_gamma_def.bottom_width = 3, 2, 2
        sparse_gamma_def.image_size = 6
        if guide_kind == "auto":
            guide = AutoDiagonalNormal(sparse_gamma_def.model, init_loc_fn=init_to_feasible)
        elif guide_kind == "autonormal":
            guide = AutoNormal(sparse_gamma_def.model)
        else:
            guide = sparse_gamma_def.guide
        return (sparse_gamma_def.model, guide), sparse_gamma_def.model, guide
    return make


def faces() -> tuple[Tensor]:
    """The Olivetti faces' stand-in: Poisson counts, 5 images of 6 pixels, float as the example's
    ``np.loadtxt(...).float()``."""
    return (torch.poisson(torch.full((5, 6), 3.0, dtype=torch.float64), generator=seeded(31)),)


# ------------------------------------------------------------------------------------ examples/eight_schools/svi.py
def eight_schools_data() -> tuple[Tensor]:
    """examples/eight_schools/data.py and svi.py's ``data = torch.stack([y, sigma], dim=1)``: [8, 2]."""
    y = torch.tensor([28, 8, -3, 7, -1, 1, 18, 12]).type(torch.Tensor)
    sigma = torch.tensor([15, 10, 16, 11, 9, 11, 10, 18]).type(torch.Tensor)
    return (torch.stack([y, sigma], dim=1),)


def eight_schools(guide_kind: str) -> Callable[[], Program]:
    """examples/eight_schools/svi.py, model and guide verbatim (the non-centred parametrisation theta = mu + tau
    eta, every site in ``pyro.plate("data", J)``), with its own guide (``"custom"``) or AutoNormal(model)."""
    def make() -> Program:
        J = 8

        def model(data):
            y = data[:, 0]
            sigma = data[:, 1]

            with pyro.plate("data", J):
                eta = pyro.sample("eta", dist.Normal(torch.zeros(J), torch.ones(J)))
                mu = pyro.sample("mu", dist.Normal(torch.zeros(1), 10 * torch.ones(1)))
                tau = pyro.sample("tau", dist.HalfCauchy(scale=25 * torch.ones(1)))

                theta = mu + tau * eta

                pyro.sample("obs", dist.Normal(theta, sigma), obs=y)

        def guide(data):
            loc_eta = torch.randn(J)
            # note that we initialize our scales to be pretty narrow
            scale_eta = 0.1 * torch.rand(J)
            loc_mu = torch.randn(1)
            scale_mu = 0.1 * torch.rand(1)
            loc_logtau = torch.randn(1)
            scale_logtau = 0.1 * torch.rand(1)

            # register learnable params in the param store
            m_eta_param = pyro.param("loc_eta", loc_eta)
            s_eta_param = pyro.param("scale_eta", scale_eta, constraint=constraints.positive)
            m_mu_param = pyro.param("loc_mu", loc_mu)
            s_mu_param = pyro.param("scale_mu", scale_mu, constraint=constraints.positive)
            m_logtau_param = pyro.param("loc_logtau", loc_logtau)
            s_logtau_param = pyro.param(
                "scale_logtau", scale_logtau, constraint=constraints.positive
            )

            # guide distributions
            dist_eta = dist.Normal(m_eta_param, s_eta_param)
            dist_mu = dist.Normal(m_mu_param, s_mu_param)
            dist_tau = dist.TransformedDistribution(
                dist.Normal(m_logtau_param, s_logtau_param),
                transforms=transforms.ExpTransform(),
            )

            with pyro.plate("data", J):
                pyro.sample("eta", dist_eta)
                pyro.sample("mu", dist_mu)
                pyro.sample("tau", dist_tau)

        if guide_kind == "autonormal":
            guide = AutoNormal(model)
        return (model, guide), model, guide
    return make


def eight_schools_centred() -> Program:
    """The centred eight schools (theta_j ~ Normal(mu, tau), the Stan model of examples/eight_schools/README.md
    before its reparametrisation), which Pyro's examples do not hold: NumPyro's README program ``eight_schools(J,
    sigma, y)`` written with pyro.sample, with svi.py's signature ``model(data)`` and plate ``pyro.plate("data",
    J)``; the guide AutoNormal(model)."""
    J = 8

    def model(data):
        y = data[:, 0]
        sigma = data[:, 1]
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(5.0))
        with pyro.plate("data", J):
            theta = pyro.sample("theta", dist.Normal(mu, tau))
            pyro.sample("obs", dist.Normal(theta, sigma), obs=y)

    guide = AutoNormal(model)
    return (model, guide), model, guide


# ------------------------------------------------------------------------------ examples/vae/utils/custom_mlp.py
class Exp(nn.Module):
    """
    a custom module for exponentiation of tensors
    """

    def __init__(self):
        super().__init__()

    def forward(self, val):
        return torch.exp(val)


class ConcatModule(nn.Module):
    """
    a custom module for concatenation of tensors
    """

    def __init__(self, allow_broadcast=False):
        self.allow_broadcast = allow_broadcast
        super().__init__()

    def forward(self, *input_args):
        # we have a single object
        if len(input_args) == 1:
            # regardless of type,
            # we don't care about single objects
            # we just index into the object
            input_args = input_args[0]

        # don't concat things that are just single objects
        if torch.is_tensor(input_args):
            return input_args
        else:
            if self.allow_broadcast:
                shape = broadcast_shape(*[s.shape[:-1] for s in input_args]) + (-1,)
                input_args = [s.expand(shape) for s in input_args]
            return torch.cat(input_args, dim=-1)


class ListOutModule(nn.ModuleList):
    """
    a custom module for outputting a list of tensors from a list of nn modules
    """

    def __init__(self, modules):
        super().__init__(modules)

    def forward(self, *args, **kwargs):
        # loop over modules in self, apply same args
        return [mm.forward(*args, **kwargs) for mm in self]


def call_nn_op(op):
    """
    a helper function that adds appropriate parameters when calling
    an nn module representing an operation like Softmax

    :param op: the nn.Module operation to instantiate
    :return: instantiation of the op module with appropriate parameters
    """
    if op in [nn.Softmax, nn.LogSoftmax]:
        return op(dim=1)
    else:
        return op()


class MLP(nn.Module):
    def __init__(
        self,
        mlp_sizes,
        activation=nn.ReLU,
        output_activation=None,
        post_layer_fct=lambda layer_ix, total_layers, layer: None,
        post_act_fct=lambda layer_ix, total_layers, layer: None,
        allow_broadcast=False,
        use_cuda=False,
    ):
        # init the module object
        super().__init__()

        assert len(mlp_sizes) >= 2, "Must have input and output layer sizes defined"

        # get our inputs, outputs, and hidden
        input_size, hidden_sizes, output_size = (
            mlp_sizes[0],
            mlp_sizes[1:-1],
            mlp_sizes[-1],
        )

        # assume int or list
        assert isinstance(
            input_size, (int, list, tuple)
        ), "input_size must be int, list, tuple"

        # everything in MLP will be concatted if it's multiple arguments
        last_layer_size = input_size if type(input_size) == int else sum(input_size)  # noqa: E721

        # everything sent in will be concatted together by default
        all_modules = [ConcatModule(allow_broadcast)]

        # loop over l
        for layer_ix, layer_size in enumerate(hidden_sizes):
            assert type(layer_size) == int, "Hidden layer sizes must be ints"  # noqa: E721

            # get our nn layer module (in this case nn.Linear by default)
            cur_linear_layer = nn.Linear(last_layer_size, layer_size)

            # for numerical stability -- initialize the layer properly
            cur_linear_layer.weight.data.normal_(0, 0.001)
            cur_linear_layer.bias.data.normal_(0, 0.001)

            # add our linear layer
            all_modules.append(cur_linear_layer)

            # handle post_linear
            post_linear = post_layer_fct(
                layer_ix + 1, len(hidden_sizes), all_modules[-1]
            )

            # if we send something back, add it to sequential
            # here we could return a batch norm for example
            if post_linear is not None:
                all_modules.append(post_linear)

            # handle activation (assumed no params -- deal with that later)
            all_modules.append(activation())

            # now handle after activation
            post_activation = post_act_fct(
                layer_ix + 1, len(hidden_sizes), all_modules[-1]
            )

            # handle post_activation if not null
            # could add batch norm for example
            if post_activation is not None:
                all_modules.append(post_activation)

            # save the layer size we just created
            last_layer_size = layer_size

        # now we have all of our hidden layers
        # we handle outputs
        assert isinstance(
            output_size, (int, list, tuple)
        ), "output_size must be int, list, tuple"

        if type(output_size) == int:  # noqa: E721
            all_modules.append(nn.Linear(last_layer_size, output_size))
            if output_activation is not None:
                all_modules.append(
                    call_nn_op(output_activation)
                    if isclass(output_activation)
                    else output_activation
                )
        else:
            # we're going to have a bunch of separate layers we can spit out (a tuple of outputs)
            out_layers = []

            # multiple outputs? handle separately
            for out_ix, out_size in enumerate(output_size):
                # for a single output object, we create a linear layer and some weights
                split_layer = []

                # we have an activation function
                split_layer.append(nn.Linear(last_layer_size, out_size))

                # then we get our output activation (either we repeat all or we index into a same sized array)
                act_out_fct = (
                    output_activation
                    if not isinstance(output_activation, (list, tuple))
                    else output_activation[out_ix]
                )

                if act_out_fct:
                    # we check if it's a class. if so, instantiate the object
                    # otherwise, use the object directly (e.g. pre-instaniated)
                    split_layer.append(
                        call_nn_op(act_out_fct) if isclass(act_out_fct) else act_out_fct
                    )

                # our outputs is just a sequential of the two
                out_layers.append(nn.Sequential(*split_layer))

            all_modules.append(ListOutModule(out_layers))

        # now we have all of our modules, we're ready to build our sequential!
        # process mlps in order, pretty standard here
        self.sequential_mlp = nn.Sequential(*all_modules)

    # pass through our sequential for the output!
    def forward(self, *args, **kwargs):
        return self.sequential_mlp.forward(*args, **kwargs)


# -------------------------------------------------------------------------------------- examples/vae/ss_vae_M2.py
class SSVAE(nn.Module):
    """
    This class encapsulates the parameters (neural networks) and models & guides needed to train a
    semi-supervised variational auto-encoder on the MNIST image dataset

    :param output_size: size of the tensor representing the class label (10 for MNIST since
                        we represent the class labels as a one-hot vector with 10 components)
    :param input_size: size of the tensor representing the image (28*28 = 784 for our MNIST dataset
                       since we flatten the images and scale the pixels to be in [0,1])
    :param z_dim: size of the tensor representing the latent random variable z
                  (handwriting style for our MNIST dataset)
    :param hidden_layers: a tuple (or list) of MLP layers to be used in the neural networks
                          representing the parameters of the distributions in our model
    :param use_cuda: use GPUs for faster training
    :param aux_loss_multiplier: the multiplier to use with the auxiliary loss
    """

    def __init__(
        self,
        output_size=10,
        input_size=784,
        z_dim=50,
        hidden_layers=(500,),
        config_enum=None,
        use_cuda=False,
        aux_loss_multiplier=None,
    ):
        super().__init__()

        # initialize the class with all arguments provided to the constructor
        self.output_size = output_size
        self.input_size = input_size
        self.z_dim = z_dim
        self.hidden_layers = hidden_layers
        self.allow_broadcast = config_enum == "parallel"
        self.use_cuda = use_cuda
        self.aux_loss_multiplier = aux_loss_multiplier

        # define and instantiate the neural networks representing
        # the parameters of various distributions in the model
        self.setup_networks()

    def setup_networks(self):
        z_dim = self.z_dim
        hidden_sizes = self.hidden_layers

        # define the neural networks used later in the model and the guide.
        # these networks are MLPs (multi-layered perceptrons or simple feed-forward networks)
        # where the provided activation parameter is used on every linear layer except
        # for the output layer where we use the provided output_activation parameter
        self.encoder_y = MLP(
            [self.input_size] + hidden_sizes + [self.output_size],
            activation=nn.Softplus,
            output_activation=nn.Softmax,
            allow_broadcast=self.allow_broadcast,
            use_cuda=self.use_cuda,
        )

        # a split in the final layer's size is used for multiple outputs
        # and potentially applying separate activation functions on them
        # e.g. in this network the final output is of size [z_dim,z_dim]
        # to produce loc and scale, and apply different activations [None,Exp] on them
        self.encoder_z = MLP(
            [self.input_size + self.output_size] + hidden_sizes + [[z_dim, z_dim]],
            activation=nn.Softplus,
            output_activation=[None, Exp],
            allow_broadcast=self.allow_broadcast,
            use_cuda=self.use_cuda,
        )

        self.decoder = MLP(
            [z_dim + self.output_size] + hidden_sizes + [self.input_size],
            activation=nn.Softplus,
            output_activation=nn.Sigmoid,
            allow_broadcast=self.allow_broadcast,
            use_cuda=self.use_cuda,
        )

        # using GPUs for faster training of the networks
        if self.use_cuda:
            self.cuda()

    def model(self, xs, ys=None):
        """
        The model corresponds to the following generative process:
        p(z) = normal(0,I)              # handwriting style (latent)
        p(y|x) = categorical(I/10.)     # which digit (semi-supervised)
        p(x|y,z) = bernoulli(loc(y,z))   # an image
        loc is given by a neural network  `decoder`

        :param xs: a batch of scaled vectors of pixels from an image
        :param ys: (optional) a batch of the class labels i.e.
                   the digit corresponding to the image(s)
        :return: None
        """
        # register this pytorch module and all of its sub-modules with pyro
        pyro.module("ss_vae", self)

        batch_size = xs.size(0)
        options = dict(dtype=xs.dtype, device=xs.device)
        with pyro.plate("data"):
            # sample the handwriting style from the constant prior distribution
            prior_loc = torch.zeros(batch_size, self.z_dim, **options)
            prior_scale = torch.ones(batch_size, self.z_dim, **options)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))

            # if the label y (which digit to write) is supervised, sample from the
            # constant prior, otherwise, observe the value (i.e. score it against the constant prior)
            alpha_prior = torch.ones(batch_size, self.output_size, **options) / (
                1.0 * self.output_size
            )
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys)

            # Finally, score the image (x) using the handwriting style (z) and
            # the class label y (which digit to write) against the
            # parametrized distribution p(x|y,z) = bernoulli(decoder(y,z))
            # where `decoder` is a neural network. We disable validation
            # since the decoder output is a relaxed Bernoulli value.
            loc = self.decoder([zs, ys])
            pyro.sample(
                "x", dist.Bernoulli(loc, validate_args=False).to_event(1), obs=xs
            )
            # return the loc so we can visualize it later
            return loc

    def guide(self, xs, ys=None):
        """
        The guide corresponds to the following:
        q(y|x) = categorical(alpha(x))              # infer digit from an image
        q(z|x,y) = normal(loc(x,y),scale(x,y))       # infer handwriting style from an image and the digit
        loc, scale are given by a neural network `encoder_z`
        alpha is given by a neural network `encoder_y`

        :param xs: a batch of scaled vectors of pixels from an image
        :param ys: (optional) a batch of the class labels i.e.
                   the digit corresponding to the image(s)
        :return: None
        """
        # inform Pyro that the variables in the batch of xs, ys are conditionally independent
        with pyro.plate("data"):
            # if the class label (the digit) is not supervised, sample
            # (and score) the digit with the variational distribution
            # q(y|x) = categorical(alpha(x))
            if ys is None:
                alpha = self.encoder_y(xs)
                ys = pyro.sample("y", dist.OneHotCategorical(alpha))

            # sample (and score) the latent handwriting-style with the variational
            # distribution q(z|x,y) = normal(loc(x,y),scale(x,y))
            loc, scale = self.encoder_z([xs, ys])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def ss_vae_m2(supervised: bool) -> Callable[[], Program]:
    """M2 with 8 pixels, 3 classes, z_dim 2 and one hidden layer of 6 (published: 784, 10, 50, [500]), built as main()
    builds it (``config_enum="parallel"``, hidden_layers a list as argparse gives it); the supervised loss is SVI on
    (model, guide) with (xs, ys), the unsupervised one on (model, config_enumerate(guide, "parallel", expand=True))
    with xs alone, as main()'s ``guide`` and run_inference_for_epoch pass them."""
    def make() -> Program:
        ss_vae = built(0, lambda: SSVAE(output_size=3, input_size=8, z_dim=2, hidden_layers=[6],
                                        config_enum="parallel"))
        guide = ss_vae.guide if supervised else config_enumerate(ss_vae.guide, "parallel", expand=True)
        return (ss_vae.model, guide), ss_vae.model, guide
    return make


def mnist_bits(supervised: bool) -> tuple[Tensor, ...]:
    """Binary 8-pixel images and one-hot labels of 3 classes (MNISTCached's flattened pixels and one-hot ys)."""
    xs = torch.bernoulli(torch.full((6, 8), 0.4, dtype=torch.float64), generator=seeded(32))
    ys = F.one_hot(torch.tensor([0, 2, 1, 1, 0, 2]), 3).to(xs.dtype)
    return (xs, ys) if supervised else (xs,)


# ------------------------------------------------------------------------------- examples/cvae/cvae.py, baseline.py
class BaselineNet(nn.Module):
    def __init__(self, hidden_1, hidden_2):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc3 = nn.Linear(hidden_2, 784)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = x.view(-1, 784)
        hidden = self.relu(self.fc1(x))
        hidden = self.relu(self.fc2(hidden))
        y = torch.sigmoid(self.fc3(hidden))
        return y


class Encoder(nn.Module):
    def __init__(self, z_dim, hidden_1, hidden_2):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc31 = nn.Linear(hidden_2, z_dim)
        self.fc32 = nn.Linear(hidden_2, z_dim)
        self.relu = nn.ReLU()

    def forward(self, x, y):
        # put x and y together in the same image for simplification
        xc = x.clone()
        xc[x == -1] = y[x == -1]
        xc = xc.view(-1, 784)
        # then compute the hidden units
        hidden = self.relu(self.fc1(xc))
        hidden = self.relu(self.fc2(hidden))
        # then return a mean vector and a (positive) square root covariance
        # each of size batch_size x z_dim
        z_loc = self.fc31(hidden)
        z_scale = torch.exp(self.fc32(hidden))
        return z_loc, z_scale


class Decoder(nn.Module):
    def __init__(self, z_dim, hidden_1, hidden_2):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc3 = nn.Linear(hidden_2, 784)
        self.relu = nn.ReLU()

    def forward(self, z):
        y = self.relu(self.fc1(z))
        y = self.relu(self.fc2(y))
        y = torch.sigmoid(self.fc3(y))
        return y


class CVAE(nn.Module):
    def __init__(self, z_dim, hidden_1, hidden_2, pre_trained_baseline_net):
        super().__init__()
        # The CVAE is composed of multiple MLPs, such as recognition network
        # qφ(z|x, y), (conditional) prior network pθ(z|x), and generation
        # network pθ(y|x, z). Also, CVAE is built on top of the NN: not only
        # the direct input x, but also the initial guess y_hat made by the NN
        # are fed into the prior network.
        self.baseline_net = pre_trained_baseline_net
        self.prior_net = Encoder(z_dim, hidden_1, hidden_2)
        self.generation_net = Decoder(z_dim, hidden_1, hidden_2)
        self.recognition_net = Encoder(z_dim, hidden_1, hidden_2)

    def model(self, xs, ys=None):
        # register this pytorch module and all of its sub-modules with pyro
        pyro.module("generation_net", self)
        batch_size = xs.shape[0]
        with pyro.plate("data"):
            # Prior network uses the baseline predictions as initial guess.
            # This is the generative process with recurrent connection
            with torch.no_grad():
                # this ensures the training process does not change the
                # baseline network
                y_hat = self.baseline_net(xs).view(xs.shape)

            # sample the handwriting style from the prior distribution, which is
            # modulated by the input xs.
            prior_loc, prior_scale = self.prior_net(xs, y_hat)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))

            # the output y is generated from the distribution pθ(y|x, z)
            loc = self.generation_net(zs)

            if ys is not None:
                # In training, we will only sample in the masked image
                mask_loc = loc[(xs == -1).view(-1, 784)].view(batch_size, -1)
                mask_ys = ys[xs == -1].view(batch_size, -1)
                pyro.sample(
                    "y",
                    dist.Bernoulli(mask_loc, validate_args=False).to_event(1),
                    obs=mask_ys,
                )
            else:
                # In testing, no need to sample: the output is already a
                # probability in [0, 1] range, which better represent pixel
                # values considering grayscale. If we sample, we will force
                # each pixel to be  either 0 or 1, killing the grayscale
                pyro.deterministic("y", loc.detach())

            # return the loc so we can visualize it later
            return loc

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                # at inference time, ys is not provided. In that case,
                # the model uses the prior network
                y_hat = self.baseline_net(xs).view(xs.shape)
                loc, scale = self.prior_net(xs, y_hat)
            else:
                # at training time, uses the variational distribution
                # q(z|x,y) = normal(loc(x,y),scale(x,y))
                loc, scale = self.recognition_net(xs, ys)

            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def cvae() -> Program:
    """train()'s ``CVAE(200, 500, 500, pre_trained_baseline_net)`` made CVAE(2, 8, 8, BaselineNet(8, 8)) (the images
    stay 28 x 28: the networks hard-code 784); the program handed over as train() hands it to SVI."""
    cvae_net = built(0, lambda: CVAE(2, 8, 8, BaselineNet(8, 8)))
    return cvae_net, cvae_net.model, cvae_net.guide


def quadrants() -> tuple[Tensor, Tensor]:
    """mnist.py's MaskImages(num_quadrant_inputs=1) applied to grayscale 28 x 28 images in [0, 1]: the input shows
    the bottom-left quadrant (-1 elsewhere), the output the other three (-1 on the input's quadrant)."""
    inputs, outputs = [], []
    for tensor in torch.rand(4, 28, 28, dtype=torch.float64, generator=seeded(33)):
        out = tensor.detach().clone()
        h, w = tensor.shape
        out[h // 2:, : w // 2] = -1
        inp = tensor.clone()
        inp[out != -1] = -1
        inputs.append(inp)
        outputs.append(out)
    return torch.stack(inputs), torch.stack(outputs)


# ------------------------------------------------------------------------------------------------- examples/hmm.py
def model_1(sequences, lengths, args, batch_size=None, include_prior=True):
    # Sometimes it is safe to ignore jit warnings. Here we use the
    # pyro.util.ignore_jit_warnings context manager to silence warnings about
    # conversion to integer, since we know all three numbers will be the same
    # across all invocations to the model.
    with ignore_jit_warnings():
        num_sequences, max_length, data_dim = map(int, sequences.shape)
        assert lengths.shape == (num_sequences,)
        assert lengths.max() <= max_length
    with poutine.mask(mask=include_prior):
        probs_x = pyro.sample(
            "probs_x",
            dist.Dirichlet(0.9 * torch.eye(args.hidden_dim) + 0.1).to_event(1),
        )
        probs_y = pyro.sample(
            "probs_y",
            dist.Beta(0.1, 0.9).expand([args.hidden_dim, data_dim]).to_event(2),
        )
    tones_plate = pyro.plate("tones", data_dim, dim=-1)
    # We subsample batch_size items out of num_sequences items. Note that since
    # we're using dim=-1 for the notes plate, we need to batch over a different
    # dimension, here dim=-2.
    with pyro.plate("sequences", num_sequences, batch_size, dim=-2) as batch:
        lengths = lengths[batch]
        x = 0
        # If we are not using the jit, then we can vary the program structure
        # each call by running for a dynamically determined number of time
        # steps, lengths.max(). However if we are using the jit, then we try to
        # keep a single program structure for all minibatches; the fixed
        # structure ends up being faster since each program structure would
        # need to trigger a new jit compile stage.
        for t in pyro.markov(range(max_length if args.jit else lengths.max())):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                x = pyro.sample(
                    "x_{}".format(t),
                    dist.Categorical(probs_x[x]),
                    infer={"enumerate": "parallel"},
                )
                with tones_plate:
                    pyro.sample(
                        "y_{}".format(t),
                        dist.Bernoulli(probs_y[x.squeeze(-1)]),
                        obs=sequences[batch, t],
                    )


def model_2(sequences, lengths, args, batch_size=None, include_prior=True):
    with ignore_jit_warnings():
        num_sequences, max_length, data_dim = map(int, sequences.shape)
        assert lengths.shape == (num_sequences,)
        assert lengths.max() <= max_length
    with poutine.mask(mask=include_prior):
        probs_x = pyro.sample(
            "probs_x",
            dist.Dirichlet(0.9 * torch.eye(args.hidden_dim) + 0.1).to_event(1),
        )
        probs_y = pyro.sample(
            "probs_y",
            dist.Beta(0.1, 0.9).expand([args.hidden_dim, 2, data_dim]).to_event(3),
        )
    tones_plate = pyro.plate("tones", data_dim, dim=-1)
    with pyro.plate("sequences", num_sequences, batch_size, dim=-2) as batch:
        lengths = lengths[batch]
        x, y = 0, 0
        for t in pyro.markov(range(max_length if args.jit else lengths.max())):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                x = pyro.sample(
                    "x_{}".format(t),
                    dist.Categorical(probs_x[x]),
                    infer={"enumerate": "parallel"},
                )
                # Note the broadcasting tricks here: to index probs_y on tensors x and y,
                # we also need a final tensor for the tones dimension. This is conveniently
                # provided by the plate associated with that dimension.
                with tones_plate as tones:
                    y = pyro.sample(
                        "y_{}".format(t),
                        dist.Bernoulli(probs_y[x, y, tones]),
                        obs=sequences[batch, t],
                    ).long()


HMM_ARGS = argparse.Namespace(hidden_dim=2, jit=False)


def hmm(model: Callable) -> Callable[[], Program]:
    """main(): ``guide = AutoDelta(poutine.block(model, expose_fn=lambda msg: msg["name"].startswith("probs_")))``
    and ``svi.step(sequences, lengths, args=args, batch_size=args.batch_size)``; ``args`` binds hidden_dim 2 (the
    published 16) by ``functools.partial``, the mini-batch left to the caller."""
    def make() -> Program:
        hmm_model = functools.partial(model, args=HMM_ARGS)
        guide = AutoDelta(
            poutine.block(hmm_model, expose_fn=lambda msg: msg["name"].startswith("probs_"))
        )
        return (hmm_model, guide), hmm_model, guide
    return make


def chorales() -> tuple[Tensor, Tensor]:
    """JSB chorales stand-in: 6 sequences of up to 4 steps over 3 tones (more sequences than tones), float 0/1
    tones, int64 lengths (polyphonic_data_loader's ``sequences`` and ``sequence_lengths``)."""
    sequences = torch.bernoulli(torch.full((6, 4, 3), 0.3, dtype=torch.float64), generator=seeded(34))
    lengths = torch.tensor([4, 2, 3, 4, 1, 3])
    for sequence, length in zip(sequences, lengths):
        sequence[length:] = 0.0  # padded as the loader pads
    return sequences, lengths


# ------------------------------------------------------------------------ tutorial svi_part_i and svi_part_ii
def coin_subsampled() -> Program:
    """svi_part_i's coin: its model with the observations in svi_part_ii's vectorised, subsampled plate
    ``pyro.plate('observe_data', size=10, subsample_size=5) as ind`` (``obs=data.index_select(0, ind)``, the
    tutorial's text), and svi_part_i's guide verbatim."""
    def model(data):
        # define the hyperparameters that control the Beta prior
        alpha0 = torch.tensor(10.0)
        beta0 = torch.tensor(10.0)
        # sample f from the Beta prior
        f = pyro.sample("latent_fairness", dist.Beta(alpha0, beta0))
        with pyro.plate('observe_data', size=10, subsample_size=5) as ind:
            pyro.sample('obs', dist.Bernoulli(f),
                        obs=data.index_select(0, ind))

    def guide(data):
        # register the two variational parameters with Pyro
        # - both parameters will have initial value 15.0.
        # - because we invoke constraints.positive, the optimizer
        # will take gradients on the unconstrained parameters
        # (which are related to the constrained parameters by a log)
        alpha_q = pyro.param("alpha_q", torch.tensor(15.0),
                             constraint=constraints.positive)
        beta_q = pyro.param("beta_q", torch.tensor(15.0),
                            constraint=constraints.positive)
        # sample latent_fairness from the distribution Beta(alpha_q, beta_q)
        pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))

    return (model, guide), model, guide


def coin_tosses() -> tuple[Tensor]:
    """svi_part_ii: ``data = torch.zeros(10); data[0:6] = torch.ones(6)  # 6 heads and 4 tails``."""
    data = torch.zeros(10)
    data[0:6] = torch.ones(6)  # 6 heads and 4 tails
    return (data,)


# ------------------------------------------------------------------------------ tutorial dirichlet_process_mixture
def dp_mixture() -> Program:
    """The tutorial's first model and guide (a truncated stick-breaking mixture of 2-D Gaussians, T = 6, alpha = 0.1)
    verbatim, with its globals T, alpha and N as locals; N = 20 points (published: 200)."""
    T, alpha, N = 6, 0.1, 20

    def mix_weights(beta):
        beta1m_cumprod = (1 - beta).cumprod(-1)
        return F.pad(beta, (0, 1), value=1) * F.pad(beta1m_cumprod, (1, 0), value=1)

    def model(data):
        with pyro.plate("beta_plate", T-1):
            beta = pyro.sample("beta", Beta(1, alpha))

        with pyro.plate("mu_plate", T):
            mu = pyro.sample("mu", MultivariateNormal(torch.zeros(2), 5 * torch.eye(2)))

        with pyro.plate("data", N):
            z = pyro.sample("z", Categorical(mix_weights(beta)))
            pyro.sample("obs", MultivariateNormal(mu[z], torch.eye(2)), obs=data)

    def guide(data):
        kappa = pyro.param('kappa', lambda: Uniform(0, 2).sample([T-1]), constraint=constraints.positive)
        tau = pyro.param('tau', lambda: MultivariateNormal(torch.zeros(2), 3 * torch.eye(2)).sample([T]))
        phi = pyro.param('phi', lambda: Dirichlet(1/T * torch.ones(T)).sample([N]), constraint=constraints.simplex)

        with pyro.plate("beta_plate", T-1):
            q_beta = pyro.sample("beta", Beta(torch.ones(T-1), kappa))  # noqa: F841

        with pyro.plate("mu_plate", T):
            q_mu = pyro.sample("mu", MultivariateNormal(tau, torch.eye(2)))  # noqa: F841

        with pyro.plate("data", N):
            z = pyro.sample("z", Categorical(phi))  # noqa: F841

    return (model, guide), model, guide


def four_clusters() -> tuple[Tensor]:
    """The tutorial's data, 50 points from each of four 2-D Gaussians, made 5 from each (N = 20)."""
    generator = seeded(35)
    centres = torch.tensor([[-8.0, -8.0], [8.0, 8.0], [1.5, 2.0], [-0.5, 1.0]])
    return ((centres[:, None] + torch.randn(4, 5, 2, generator=generator, dtype=torch.float64)).reshape(20, 2),)


# ------------------------------------------------------------------------------------------- tutorial svi_flow_guide
def flow_tutorial() -> tuple[Any, Callable, Callable, Callable]:
    """The tutorial's prior, likelihood, model, and its guide over a flow (built by ``flow_guide``), verbatim."""
    prior = pyro.distributions.Normal(torch.zeros(3), torch.ones(3)).to_event(1)

    def likelihood(z: Tensor):
        mu = z[..., :2]
        rho = z[..., 2].tanh() * 0.99

        cov = 1e-2 * torch.stack([
            torch.ones_like(rho), rho,
            rho, torch.ones_like(rho),
        ], dim=-1).unflatten(-1, (2, 2))

        return pyro.distributions.MultivariateNormal(mu, cov)

    def model(x: Tensor):
        with pyro.plate("data", x.shape[1]):
            z = pyro.sample("z", prior)

            with pyro.plate("obs", 5):
                pyro.sample("x", likelihood(z), obs=x)

    def guide_of(flow):
        def guide(x: Tensor):
            pyro.module("flow", flow)

            with pyro.plate("data", x.shape[1]):  # amortized
                pyro.sample("z", ZukoToPyro(flow(x.transpose(0, 1).flatten(-2))))
        return guide

    return prior, likelihood, model, guide_of


def flow_guide() -> Program:
    """The tutorial's model and amortised flow guide: zuko's NSF with the tutorial's features=3, context=10,
    transforms=1 and its hidden features (256, 256) made (8, 8), inverted as the tutorial inverts it."""
    _, _, model, guide_of = flow_tutorial()

    def make_flow():
        flow = zuko.flows.NSF(features=3, context=10, transforms=1, hidden_features=(8, 8))
        flow.transform = flow.transform.inv  # inverse autoregressive flow (IAF) are fast to sample from
        return flow

    guide = guide_of(built(0, make_flow))
    return (model, guide), model, guide


def flow_data() -> tuple[Tensor]:
    """The tutorial's ``z_star = prior.sample((64,)); x_star = likelihood(z_star).sample((5,))`` with 6 points:
    x [5, 6, 2], the data plate at dim -1 (size ``x.shape[1]``) and the "obs" plate of 5 at dim -2, left of it."""
    prior, likelihood, _, _ = flow_tutorial()
    with torch.random.fork_rng():
        torch.manual_seed(36)
        z_star = prior.sample((6,))
        x_star = likelihood(z_star).sample((5,))
    return (x_star,)


EXAMPLES = [
    Example("lda", "examples/lda.py", lda, lda_data, points=6, enum=True, max_plate_nesting=2, batch_size=3,
            broadcasts=False),
    Example("sparse_gamma_def_custom", "examples/sparse_gamma_def.py", sparse_gamma_def("custom"), faces, points=5,
            exact=False),
    Example("sparse_gamma_def_autodiagonal", "examples/sparse_gamma_def.py", sparse_gamma_def("auto"), faces,
            points=5, broadcasts=False),
    Example("sparse_gamma_def_autonormal", "examples/sparse_gamma_def.py", sparse_gamma_def("autonormal"), faces,
            points=5),
    Example("eight_schools_custom", "examples/eight_schools/svi.py", eight_schools("custom"), eight_schools_data,
            points=8, exact=False),
    Example("eight_schools_autonormal", "examples/eight_schools/svi.py", eight_schools("autonormal"),
            eight_schools_data, points=8),
    Example("eight_schools_centred_autonormal", "NumPyro README / examples/eight_schools/README.md",
            eight_schools_centred, eight_schools_data, points=8),
    Example("ss_vae_m2_supervised", "examples/vae/ss_vae_M2.py", ss_vae_m2(True), lambda: mnist_bits(True), points=6,
            batch_size=3),
    Example("ss_vae_m2_unsupervised", "examples/vae/ss_vae_M2.py", ss_vae_m2(False), lambda: mnist_bits(False),
            points=6, enum=True, exact=False, guide_enumerates=True, batch_size=3),
    Example("cvae", "examples/cvae/cvae.py", cvae, quadrants, points=4, broadcasts=False, batch_size=2),
    Example("hmm_model_1", "examples/hmm.py", hmm(model_1), chorales, points=6, enum=True, max_plate_nesting=2,
            exact=False, broadcasts=False, batch_size=3),
    Example("hmm_model_2", "examples/hmm.py", hmm(model_2), chorales, points=6, enum=True, max_plate_nesting=2,
            exact=False, broadcasts=False, batch_size=3),
    Example("svi_part_ii_subsample", "tutorial/source/svi_part_ii.ipynb", coin_subsampled, coin_tosses, points=10,
            exact=False, batch_size=5),
    Example("dp_mixture", "tutorial/source/dirichlet_process_mixture.ipynb", dp_mixture, four_clusters, points=20,
            exact=False, broadcasts=False),
    Example("svi_flow_guide", "tutorial/source/svi_flow_guide.ipynb", flow_guide, flow_data, points=6),
]
