"""The objective's raw material, from which the backends of :mod:`ppgen.inference` are built.

The interface of a backend that minimises a loss (:mod:`~ppgen.objective.base`) and of one that draws
(:mod:`~ppgen.objective.sampler`, with the NUTS chains it runs); the [K, N] log importance weights and the bounds
built on them (:mod:`~ppgen.objective.bounds`, and :mod:`~ppgen.objective.weights` for a program as it is); the
gradient estimators that change which paths the gradient takes (:mod:`~ppgen.objective.estimators`); the model's
own draws of x (:mod:`~ppgen.objective.generated`) and the interface of an objective with a critic
(:mod:`~ppgen.objective.adversary`); the chains on an unnormalised density log f that training and the queries
share: Langevin dynamics, Metropolis-adjusted and annealed (:mod:`~ppgen.objective.langevin`), and Pyro's NUTS on the
potential -log f (:mod:`~ppgen.objective.hamiltonian`). May import :mod:`ppgen.program` and :mod:`ppgen.utils`.
"""
