"""The optimisation: ``ppgen.fit`` and what it runs.

:func:`~ppgen.training.fitting.fit` checks its arguments (:mod:`~ppgen.training.boundary`), reads the data in memory or
streamed (:mod:`~ppgen.training.streaming`), and runs the training loop (:mod:`~ppgen.training.loop`): the training
step (:mod:`~ppgen.training.step`), or with a critic the two players' (:mod:`~ppgen.training.players`), under the
divergence guard (:mod:`~ppgen.training.guard`), returning a :class:`~ppgen.Fit`. What watches the run from epoch to
epoch (:mod:`~ppgen.training.observing`) is a list of callbacks (:mod:`~ppgen.training.callbacks`): validation and
early stopping (:mod:`~ppgen.training.validation`), TensorBoard (:mod:`~ppgen.training.tensorboard`), the user's.
The registry (:mod:`~ppgen.training.registry`) names the zoo and the backends, for ``fit``'s default and the command
line: the one module that imports :mod:`ppgen.models` and :mod:`ppgen.inference`. May import every room below it.
"""
