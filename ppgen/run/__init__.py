"""The run: everything a run leaves behind, and the processes that carry it out.

Checkpoint files written atomically and read without running code (:mod:`~ppgen.run.checkpoint`), the whole state
of a run that resumes bitwise (:mod:`~ppgen.run.state`), the run folder written as one unit
(:mod:`~ppgen.run.folder`), and the ranks of a data-parallel run (:mod:`~ppgen.run.distributed`). May import
:mod:`ppgen.program` and :mod:`ppgen.utils`.
"""
