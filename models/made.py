"""The masked autoencoder for distribution estimation: an MLP made autoregressive by masks, one or several orderings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ppgen.models.autoregressive import AutoregressiveModel
from ppgen.utils.checks import check_positive_int, check_seed


class MADE(AutoregressiveModel):
    """MADE over x in {0, 1}^D, with exact log p(x), for one ordering or a uniform mixture of M orderings.

    Generative story, for an ordering o (a permutation of 1..D) and a masked MLP f:

        m ~ Uniform{1..M},   x_{o^m_t} | x_{o^m_<t} ~ Bernoulli(sigmoid(f(x; masks^m)_{o^m_t})),  t = 1..D,
        p(x) = (1/M) sum_m prod_t p(x_{o^m_t} | x_{o^m_<t}),   log p(x) = logsumexp_m log p_m(x) - log M.

    Each unit k of hidden layer l gets a degree m^l(k) in [min m^{l-1}, D-1] (an input's degree is its
    position in the ordering); a weight from unit j to unit k is kept where m^l(k) >= m^{l-1}(j), and a
    weight to output d where position(d) > m^L(k). So output d sees only the inputs before it, and one pass
    of the network gives all D conditionals. The M orderings share the weights and each has its own masks
    (the first ordering is 1..D, the others random); the mixture is maximised exactly, and the masks are
    drawn once from ``seed``. ``sample`` draws an ordering, then x along it, dimension by dimension.
    The model has no latent variables: ``Fit.encode`` refuses it.

    Arguments:
        x_dim: D, the number of binary dimensions.
        hidden: the widths of the hidden layers.
        orderings: M, the number of orderings (1: a single MADE).
        seed: the seed of the random orderings and hidden-unit degrees.

    References:
        MADE: Masked Autoencoder for Distribution Estimation (Germain, Gregor, Murray and Larochelle, 2015).
        https://arxiv.org/abs/1502.03509
    """

    def __init__(self, *, x_dim: int, hidden: Sequence[int] = (256,), orderings: int = 1, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(hidden, Sequence) or not hidden:
            raise TypeError(f"hidden must be a non-empty sequence of layer widths such as (256,), got {hidden!r}")
        hidden = tuple(check_positive_int(width, f"hidden[{i}]") for i, width in enumerate(hidden))
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.orderings = check_positive_int(orderings, "orderings")
        generator = torch.Generator().manual_seed(check_seed(seed))
        orders = [torch.arange(x_dim)] + [torch.randperm(x_dim, generator=generator) for _ in range(orderings - 1)]
        self.register_buffer("orders", torch.stack(orders))
        sizes = (x_dim, *hidden, x_dim)
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        masks = [made_masks(order, hidden, generator) for order in orders]
        for i, per_layer in enumerate(zip(*masks)):
            self.register_buffer(f"mask{i}", torch.stack(per_layer))  # [M, out, in]

    def logits(self, x: Tensor) -> Tensor:
        """The masked MLP under each ordering's masks, Tensor[..., M, D]."""
        h = x.unsqueeze(-2).expand(*x.shape[:-1], self.orderings, self.x_dim)
        for i, layer in enumerate(self.layers):
            if i:
                h = torch.relu(h)
            h = torch.einsum("...mi,moi->...mo", h, layer.weight * getattr(self, f"mask{i}")) + layer.bias
        return h


def made_masks(order: Tensor, hidden: Sequence[int], generator: torch.Generator) -> list[Tensor]:
    """The masks, [out, in] per layer, that make an MLP with these hidden widths autoregressive along ``order``.

    Degrees as in Germain et al. (2015): input d has degree position(d) in 1..D; a hidden unit a degree drawn
    uniformly from [lowest degree of the layer below, D-1]; a connection is kept where the degree does not
    fall, and a connection into output d only from units of degree below position(d).
    """
    dims = order.numel()
    position = torch.empty_like(order)
    position[order] = torch.arange(1, dims + 1)
    degrees = [position]
    for width in hidden:
        low = int(degrees[-1].min())
        high = max(dims - 1, low)
        degrees.append(torch.randint(low, high + 1, (width,), generator=generator))
    masks = [(later.unsqueeze(1) >= earlier.unsqueeze(0)).to(torch.get_default_dtype())
             for earlier, later in zip(degrees[:-1], degrees[1:])]
    masks.append((position.unsqueeze(1) > degrees[-1].unsqueeze(0)).to(torch.get_default_dtype()))
    return masks
