"""The queries: the three questions a fitted model answers, and the tools they use.

:class:`~ppgen.queries.result.Fit` is a thin face over one module per question: density estimation, log p(x)
(:mod:`~ppgen.queries.density`); sampling, x ~ p(x) (:mod:`~ppgen.queries.sampling`); representation, q(z|x)
(:mod:`~ppgen.queries.representation`). Posterior draws (:mod:`~ppgen.queries.posterior`) come from the guide, by
importance resampling (:mod:`~ppgen.queries.importance`) or by NUTS (:mod:`~ppgen.queries.mcmc`), and go to ArviZ
through one door (:mod:`~ppgen.queries.arviz_export`); :mod:`~ppgen.queries.evaluation` judges a fit, by its bounds
and by the metrics of its samples (:mod:`~ppgen.queries.sample_quality`, one module per metric). The
log-normaliser log Z of an unnormalised density, and log p(x) with it, come by annealed importance sampling
(:mod:`~ppgen.queries.annealing`); an energy-based model's queries go through :mod:`~ppgen.queries.energy`, its draws
through :mod:`~ppgen.queries.energy_sampling`. A fit's file is :mod:`~ppgen.queries.fit_file`, a query's inputs are
checked by :mod:`~ppgen.queries.query_inputs`. May import
:mod:`ppgen.objective`, :mod:`ppgen.run`, :mod:`ppgen.program` and :mod:`ppgen.utils`.
"""
