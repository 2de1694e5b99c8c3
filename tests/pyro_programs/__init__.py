"""Model/guide pairs adapted from Pyro's own test suite, examples and tutorials, for tests/test_pyro_programs.py.

Each :class:`~pyro_programs.common.Case` is a program written the way Pyro's sources write it, made small (a handful
of points, a few dimensions) and evaluated in float64. The comment above each program says where it comes from and
what changed; the change common to all is that every local site sits in a data plate, the outermost plate, so that a
data point is a row. Sources (pyro-ppl/pyro): ``tests/infer/test_valid_models.py``, ``tests/infer/test_enum.py``,
``examples/vae/vae.py``, ``examples/vae/ss_vae_M2.py``, ``examples/hmm.py``,
``examples/toy_mixture_model_discrete_enumeration.py`` and the tutorials ``svi_part_i``, ``svi_part_ii``, ``gmm``,
``bayesian_regression`` and ``bayesian_regression_ii``.

:mod:`pyro_programs.examples` holds Pyro's examples and tutorials themselves, models and guides verbatim (LDA, sparse
gamma DEF, eight schools, ss_vae M2, the CVAE, hmm.py, svi_part_ii, the DP mixture, the flow guide), for
tests/test_pyro_examples.py.
"""

from pyro_programs.cases import CASES

__all__ = ["CASES"]
