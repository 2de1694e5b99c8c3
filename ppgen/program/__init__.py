"""The program: what a generative model is to ppgen, and what ppgen learns by running it.

The model protocol (:mod:`~ppgen.program.protocol`), its inputs batched and aligned (:mod:`~ppgen.program.inputs`),
the traces of its guide and model over K particles (:mod:`~ppgen.program.traces`), exact sums over its enumerated
latents (:mod:`~ppgen.program.enumeration`), those traces reduced to per-point terms (:mod:`~ppgen.program.pointwise`),
its structure learnt from a real batch (:mod:`~ppgen.program.structure`), and a computation of it captured once per
batch shape and replayed (:mod:`~ppgen.program.fastpath`). May import :mod:`ppgen.utils` alone.
"""
