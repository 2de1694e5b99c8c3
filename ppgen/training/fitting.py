"""``ppgen.fit``: mini-batch optimisation of an objective over a model's parameters."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pyro
import torch
from torch import nn

from ppgen.objective.base import Objective, check_fits
from ppgen.objective.sampler import Sampler
from ppgen.program.automatic import Automatic, planned_steps
from ppgen.program.fastpath import check_compile
from ppgen.program.inputs import Batch, as_batch
from ppgen.program.protocol import as_model_input, as_module
from ppgen.program.intake import DEFAULT_BATCH_SIZE, takes_the_whole_data_set
from ppgen.program.structure import Structure, example_batch, inspect
from ppgen.queries.energy import data_moments
from ppgen.queries.result import Fit
from ppgen.run.distributed import SINGLE, Group, start
from ppgen.run.folder import CHECKPOINT, FIT, RunFolder, check_run_path
from ppgen.run.opening import describe, fit_config, open_run
from ppgen.run.state import RunState, expected_state, resume_state, state_payload
from ppgen.training.boundary import (check_batch_points, check_bool, check_model_and_data, check_optional_bool,
                                     check_run_arguments, check_state_between_steps, check_step_budget)
from ppgen.training.callbacks import EpochEnd
from ppgen.training.guard import Diverged, check_factor, check_on_nan
from ppgen.training.loop import train
from ppgen.training.observing import check_observers
from ppgen.training.optimizers import optimizer_factory
from ppgen.training.players import check_critic, critic_optimizer_factory, start_duel, with_critic
from ppgen.training.step import Gradients
from ppgen.training.streaming import as_stream, check_streamed
from ppgen.utils.checks import check_device, check_positive_float, check_positive_int, check_seed


def fit(model: Any, data: Any, *, inference: Objective | Sampler | None = None, epochs: int = 10,
        batch_size: int | None = None, lr: float = 1e-3, optim: Any = None, seed: int | None = 0,
        device: str | torch.device = "cpu",
        progress: bool | None = None, out: str | os.PathLike | None = None, checkpoint_every: int | None = None,
        resume: bool = False, overwrite: bool = False, on_nan: str = "raise",
        divergence_factor: float | None = 100.0, run_config: dict[str, Any] | None = None,
        distributed: bool = False, compile: bool | str = "auto", steps_per_epoch: int | None = None,
        validation: Any = None, patience: int | None = None, keep: str = "last",
        callbacks: list[Callable[[EpochEnd], None]] | None = None, log_dir: str | os.PathLike | None = None) -> Fit:
    """Fit a generative model to data by minimising an inference objective over mini-batches.

    Arguments:
        model: a Pyro program: an ``nn.Module`` with ``model(x)`` (and ``guide(x)`` where it has continuous
            latents), or a ``(model_fn, guide_fn)`` pair of plain functions.
        data: Tensor or NumPy array of shape [N, ...], one data point per row, or a tuple ``(x, y, ...)`` (or a
            ``TensorDataset``) of aligned inputs, batched together and passed as ``model(x, y, ...)``; the model's
            floating-point parameters take the dtype of x (float64 data, float64 model). Data that do not fit
            in memory: a ``torch.utils.data`` ``Dataset`` (read by index in the seeded order), an
            ``IterableDataset`` (read in its own order), or a ``DataLoader`` of either (or of any tensor, array or
            list) whose ``batch_size`` is ``batch_size`` (its worker processes load the items); each item is checked
            as it is read; see :mod:`ppgen.training.streaming`.
        inference: the objective, e.g. ``inference.IWAE(k=5)``; by default ``ELBO()`` for a model with
            latents that need a guide, ``MLE()`` for a model whose log p(x) is exact and ``ScoreMatching()`` for an
            energy-based model (a data site ``ppgen.Unnormalized``). A sampler, ``inference.NUTS()``, draws the
            model's global latents instead (see :func:`draw_posterior`). Before the first step the objective is
            given the data once (:meth:`~ppgen.objective.base.Objective.prepare`: ``NCE()`` fits its noise there).
            A two-player objective (``inference.Adversarial()``, ``inference.Wasserstein()``) trains its critic
            beside the model (see :mod:`ppgen.training.players`), built by default from the data's shape; the fit's
            ``inference`` holds the trained critic, and ``history`` the critic's estimate of d. An objective that
            carries tensors from step to step (``inference.ContrastiveDivergence()``'s persistent chains) keeps them
            in the run's checkpoints too.
        epochs: passes over the data.
        steps_per_epoch: the global batches of an epoch of an ``IterableDataset`` without a length, which it needs
            (an endless stream has no end of an epoch); only for such a stream.
        batch_size: data points per step (the last batch of an epoch may be smaller); by default the program's own
            choice where it makes one (its data plate's ``subsample_size``, or the whole data set for a program
            whose parameters are made per point of one batch, such as an AutoGuide on local latents in
            ``pyro.plate("data", len(x))``), else 128.
        lr: learning rate of the default optimiser, Adam, and of an optimiser class passed as ``optim``.
        optim: ``None`` (Adam, fused on CPU and CUDA: :func:`~ppgen.training.optimizers.adam`), a
            ``torch.optim.Optimizer`` subclass, or a ``pyro.optim`` optimiser such as ``pyro.optim.Adam({"lr": 1e-3})``.
        seed: seeds torch, NumPy and Python's RNGs and the data order; ``None`` leaves them alone. A model's
            initial weights are drawn when it is built, from RNGs that ppgen seeds when it is first used (see
            :func:`ppgen.seed`), so a script repeats exactly.
        device: where the parameters and the data live, e.g. ``"cuda"``.
        progress: show a progress bar; by default only when stderr is a terminal.
        out: a run folder: its manifest, a checkpoint of the whole run state (``checkpoint.pt``) written every
            ``checkpoint_every`` steps, at the end and on SIGINT/SIGTERM, and the fit (``fit.pt``).
        checkpoint_every: steps between checkpoints; by default one per epoch.
        resume: continue the run in ``out`` from its checkpoint (on CPU the result is bitwise that of a run
            never stopped); with no run there, start one.
        overwrite: replace a run already in ``out``.
        on_nan: ``"raise"`` stops at a diverging step; ``"skip"`` skips its batch and counts it.
        divergence_factor: a step loss more than this many times its running median (in scale) is a
            divergence; ``None`` turns the test off (non-finite losses and gradients are always caught).
        run_config: JSON-able settings of the caller, recorded in the run's manifest and checked on resume.
        distributed: train data-parallel on ``torch.distributed``, one process per rank, as started by
            ``torchrun`` (see :mod:`ppgen.run.distributed`): each global batch of ``batch_size`` rows is split across
            the ranks, gradients are all-reduced, rank 0 alone writes ``out``; every rank returns the same fit.
        compile: ``"auto"`` (the default): per batch shape, the plain step, the captured or the compiled one, whichever
            the steps of that shape left in the fit repay, from costs measured as it runs (the rule and its break-even
            figures: :mod:`ppgen.program.automatic`): a short fit stays on the plain step. On the benchmark's 64-128-8
            VAE (ELBO, batch 128, CPU time) a capture repays after about 150 steps of a shape (310 in a fresh process),
            a compilation after about 7,300 cold and 1,900 warm (a second run of the same model finds inductor's on-disk
            cache); the rule's priors wait longer, some 700 and 1,500 steps before this fit's own trace is measured, as
            it times with the wall clock of a machine that may be loaded. The shapes it compiles take the default
            optimiser's update into the compiled step, as ``compile=True`` does; a run's checkpoints hold the path each
            shape settled on, which a resumed run takes without probing again (bitwise on CPU where no shape settled
            compiled); with ``torch.use_deterministic_algorithms(True)`` it never compiles, as the captured step gives
            the plain step's floats. ``False``: the plain step, through Pyro's handlers every time; ``"capture"``: the
            whole step (guide, model, bound, gradient) traced once per batch shape and replayed; ``True``: each batch
            shape's graph also compiled by ``torch.compile`` when the shape comes back (seconds, once a shape). Checked
            against the plain step on the same draws; a program the trace cannot take runs the plain step (see
            :mod:`ppgen.program.fastpath`), with a warning where ``compile`` asked for the captured step, logged at
            level INFO under ``"auto"``. The seconds each batch shape's capture took are logged at level INFO by the
            ``ppgen.program.fastpath`` logger, the choices of ``"auto"`` by ``ppgen.program.automatic``'s. An objective
            that carries state between steps takes the plain step under ``"auto"``.
        validation: held-out rows, given as ``data`` is (x, or aligned inputs): at each epoch's end the objective's
            loss on them, the training loss's own estimator without gradient and with fixed draws
            (:mod:`ppgen.training.validation`), goes to ``fit.validation_history`` (and the run's checkpoints).
        patience: stop after this many epochs without a lower validation loss (``fit.stopped`` says so).
        keep: ``"last"``: the model holds the last epoch's parameters; ``"best"``: those of the epoch with the lowest
            validation loss, ``fit.best_epoch``.
        callbacks: callables called as ``callback(end)`` after each epoch (:mod:`ppgen.training.callbacks`): they
            see the history and the model, may change it, and may stop the fit.
        log_dir: a folder for TensorBoard's event files (:mod:`ppgen.training.tensorboard`; ``pip install
            "ppgen[tensorboard]"``): the training and validation losses, the learning rate, skipped batches, and
            every 10 epochs pictures of samples and of the latent space.

    What watches the run from epoch to epoch is :mod:`ppgen.training.observing`'s; at each epoch's end a line (epoch,
    loss, validation loss, seconds) goes to the ``ppgen.training.epochs`` logger at level INFO, which ``ppgen fit``
    shows where stderr is not a terminal (a library call prints nothing unasked).

    Returns:
        The :class:`~ppgen.Fit`, holding the trained model, ``history``, the loss per epoch, ``skipped``, the number
        of batches ``on_nan="skip"`` skipped, and with validation data ``validation_history`` and ``best_epoch``.

    Raises:
        TypeError, ValueError: bad arguments or data, or a backend that cannot fit this model; raised
            before the model is changed in any way. FileExistsError: a run in ``out`` already, without
            ``overwrite`` or ``resume``.
        Diverged: a ``FloatingPointError``: the step named in it diverged; the model holds the parameters of the
            last good step, in eval mode, and the exception the history so far. On CUDA with the default Adam it is
            raised at the end of that step's epoch (or at the next checkpoint or signal), where the guard's verdicts
            are read back (:func:`ppgen.training.guard.guard_for`).
        Interrupted: a ``KeyboardInterrupt``: SIGINT or SIGTERM stopped the fit after a step, checkpointed.
    """
    check_model_and_data(model, data)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
    make_optimizer = optimizer_factory(optim, check_positive_float(lr, "lr"))
    check_backend(inference)
    device = check_device(device)
    progress = check_optional_bool(progress, "progress")
    on_nan, factor = check_on_nan(on_nan), check_factor(divergence_factor)
    check_run_arguments(out, checkpoint_every, resume, overwrite)
    check_run_path(out)
    compile = check_compile(compile)
    distributed = check_bool(distributed, "distributed")
    compile = check_state_between_steps(inference, distributed, compile)
    observers = check_observers(validation, patience, keep, callbacks, log_dir)
    observers.refuse_sampler(inference)
    stream = as_stream(data, batch_size or DEFAULT_BATCH_SIZE, steps_per_epoch)
    if isinstance(inference, Sampler) and (distributed or stream is not None):
        raise ValueError(f"inference: {inference!r} draws from the posterior given the whole data set in memory, on "
                         f"one process: pass the data as tensors, without distributed=True")
    group, device = start(device, seed) if distributed else (SINGLE, device)
    if seed is not None:
        pyro.set_rng_seed(check_seed(seed))
    data = stream if stream is not None else as_batch(data, name="data", keep_integer_x=True)
    module = as_module(model)
    # Everything is checked before the model changes: trace it as it is (this also creates the parameters
    # of a program that makes them on its first run), then move it to `device` and the data's dtype.
    structure = inspect(module, data if stream is None else data.head(batch_size or DEFAULT_BATCH_SIZE), name="data",
                        batch_size=batch_size, placed=True, training=True)  # in the mode it trains in
    if stream is not None and structure.plan.whole_data:  # a stream's first batch held all of it
        raise takes_the_whole_data_set("data", structure.plan.data_plate)
    batch_size = program_batch_size(structure, batch_size)
    check_step_budget(inference, min(batch_size, data.size or batch_size), batch_size)
    if stream is None:  # a stream's batches are each made floating point as they are read
        data = structure.program_data(data)
    if isinstance(inference, Sampler):  # the hook for a sampler: one call that draws, in place of gradient steps
        return draw_posterior(module, structure, inference, data, device, progress, out)
    if next(module.parameters(), None) is None:
        raise ValueError("the model has no parameters to fit")
    leading = data if stream is None else data.head(batch_size)  # a stream is checked a batch at a time
    structure.check_data(leading, name="data")
    moments = data_moments(structure, leading)  # an energy model's: where its samplers and log Z's AIS start
    data = check_streamed(structure, data)
    if inference is None:
        from ppgen.training.registry import default_inference  # the registry joins the core to the backends

        inference = default_inference(structure)
    check_fits(inference, structure)
    inference = inference.prepare(module, structure, leading)
    check_batch_points(inference, data.size, batch_size, structure.own_batch_size is not None, group.world_size)
    observers.prepare(module, structure, inference, example_batch(leading), device, batch_size, seed)
    steps = {} if steps_per_epoch is None else {"steps_per_epoch": steps_per_epoch}  # older runs' configs stay equal
    if structure.own_batch_size is not None:  # an epoch's last, smaller batch dropped (see train)
        steps["drop_last"] = True
    if observers.checked is not None:  # older runs' configs stay equal
        steps.update(validation=describe(observers.validation), patience=patience, keep=keep)
    config = {} if out is None else fit_config(module, inference, data, dict(epochs=epochs, batch_size=batch_size,
                                                                          lr=lr, optim=optim, seed=seed, **steps,
                                                                          **group.settings), run_config)
    x = leading.args[structure.observed_input or 0]
    inference = with_critic(inference, x.shape[1:])
    check_critic(inference, module, x[:batch_size])
    make_critic_optimizer = critic_optimizer_factory(inference, optim, lr)
    n = data.size if data.size is not None else sys.maxsize  # a stream without a length: N unknown
    dtype = leading.float_dtype
    ordered = stream is None or not stream.iterable  # a stream read in its own order has no order to resume
    critic = None if make_critic_optimizer is None else (inference.critic, make_critic_optimizer)
    carried = inference.persistent_state()  # the objective's state between steps, made by prepare
    expected = (dataclasses.replace(expected_state(module, make_optimizer, device, dtype, ordered, critic=critic,
                                                   objective=carried), callbacks=observers.checkers())
                if resume else None)
    run, saved = group.from_writer(lambda: open_run(out, config, module, n, overwrite=overwrite, resume=resume,
                                                    expected=expected))
    if callable(getattr(module, "initialize", None)):  # may refuse the data too, before it changes anything
        module.initialize(*as_model_input(leading, module).args)
    module.to(device=device, dtype=dtype)
    data = data.to(device, dtype)
    group.broadcast_parameters(module)
    group.seed_rank(seed)
    optimizer = make_optimizer(list(module.parameters()))
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    duel = start_duel(inference, make_critic_optimizer, device, dtype)
    critic = None if duel is None else (duel.critic, duel.optimizer)
    state = resume_state(group.rank_state(saved), module, optimizer, generator, critic=critic, objective=carried)
    if run is not None:
        run = group.from_writer(lambda: RunFolder.start(run.path, config, overwrite=overwrite, resume=resume))
    finished = run is not None and run.finished  # a finished run resumed: nothing to train, nothing rewritten
    save = None if finished else checkpointer(run, module, optimizer, generator, config, group, critic,
                                              inference.persistent_state)
    example = example_batch(data).to("cpu")
    watch = observers.start(module, optimizer, lambda history: Fit(module, structure, inference, history=history,
                                                                   example=example, moments=moments),
                            leading, seed, group.writer and not finished)
    watch.start(state)
    try:
        step = training_step(module, structure, inference, compile, data.size, batch_size, epochs, state, group,
                             steps_per_epoch)
        state = train(step, optimizer, data, epochs, batch_size, generator, progress, state=state, save=save,
                      every=checkpoint_every, on_nan=on_nan, factor=factor, group=group, duel=duel, callbacks=watch)
    except Diverged:
        if duel is not None:  # as Diverged says: the critic too holds its last good parameters in eval mode
            duel.critic.eval()
        raise
    finally:
        watch.close()
    if duel is not None:
        duel.critic.eval()
    result = Fit(module, structure, inference, history=state.history, example=example, skipped=state.skipped,
                 moments=moments, stopped=state.stopped, **observers.results())
    if run is not None and group.writer and not finished:
        result.save(run.path / FIT)
        run.record(FIT)
        run.mark_complete()
    group.barrier()  # the run folder is complete before any rank returns
    return result


def training_step(module: torch.nn.Module, structure: Structure, inference: Objective, compile: bool | str,
                  size: int | None, batch_size: int, epochs: int, state: RunState, group: Group,
                  steps_per_epoch: int | None = None) -> Gradients | Automatic:
    """The step of a fit (:class:`~ppgen.training.step.Gradients`) under ``compile``; under ``"auto"`` chosen per batch
    shape by :class:`~ppgen.program.automatic.Automatic` for the steps the fit has left from ``state``: ``epochs``
    over ``size`` points (``None``: a stream of unknown length, ``steps_per_epoch`` batches an epoch) in batches of
    ``batch_size``, each shared out over ``group``'s ranks."""
    if compile != "auto":
        return Gradients(module, structure, inference, compile)
    drop_last = structure.own_batch_size is not None  # as train: a program of one batch size takes no smaller batch
    plan = planned_steps(size, batch_size, epochs, state.epoch, state.position, drop_last,
                         lambda rows: len(group.shard(torch.arange(rows))), steps_per_epoch)
    return Automatic(Gradients(module, structure, inference, False), plan, settled=state.compile_choices)


def draw_posterior(module: nn.Module, structure: Structure, sampler: Sampler, data: Batch, device: torch.device,
                   progress: bool | None, out: Any) -> Fit:
    """The hook by which a :class:`~ppgen.objective.sampler.Sampler` (``inference.NUTS``) fits: it draws the global
    latents given the whole data set once, and the :class:`~ppgen.Fit` keeps the draws (``fit.draws``; ``history`` is
    empty). The mini-batch settings (``epochs``, ``batch_size``, ``lr``, ``optim``, ``on_nan``) do not apply to it.

    Raises:
        ValueError: a run folder (``out``), which records the state of gradient steps, a model the sampler cannot
            draw from (an implicit one among them), or a model with learnt parameters, which a sampler would leave at
            their initial values; all before any work.
    """
    if out is not None:
        raise ValueError(f"out: a run folder resumes gradient steps, which {sampler!r} does not take: save its fit "
                         f"with fit.save(path)")
    check_fits(sampler, structure)
    if any(True for _ in module.parameters()):
        raise ValueError(f"{sampler!r} draws latents, but the model has parameters that nothing would fit: give "
                         f"them priors (pyro.sample outside the data plate), or fit by inference.MAP() or ELBO()")
    structure.check_data(data, name="data")
    dtype = data.float_dtype
    module.to(device=device, dtype=dtype)
    data = data.to(device, dtype)
    show = sys.stderr.isatty() if progress is None else progress
    draws = sampler.draw(module, structure, data, show)
    return Fit(module, structure, sampler, history=[], example=example_batch(data).to("cpu"),
               draws=draws)


def program_batch_size(structure: Structure, batch_size: int | None) -> int:
    """The number of points per step: ``batch_size``, or where it is ``None`` the program's own choice (see
    :func:`fit`); a ``ValueError`` where the user's differs from the size the program takes (a batch_size above
    N stands for all of the N points, as everywhere)."""
    own = structure.own_batch_size
    if own is not None and batch_size is not None and batch_size != own and not batch_size > own == structure.data_size:
        how = (f"subsamples {own} of them itself" if own < structure.data_size
               else "cannot be given a batch of them (see the docs' programs page)")
        raise ValueError(f"batch_size: the program takes the whole data set at every step, and its data plate "
                         f"pyro.plate('{structure.plan.data_plate}', {structure.data_size}) {how}: pass batch_size="
                         f"{own}, or leave batch_size out")
    return own or batch_size or DEFAULT_BATCH_SIZE


def check_backend(inference: Any) -> None:
    """A ``TypeError`` unless ``inference`` is ``None`` or a backend that a saved fit can record: an objective, or a
    sampler (:class:`~ppgen.objective.sampler.Sampler`)."""
    if inference is None:
        return
    if not isinstance(inference, (Objective, Sampler)):
        raise TypeError(f"inference must be a ppgen.inference backend such as inference.ELBO(), "
                        f"got {type(inference).__name__}")
    if not dataclasses.is_dataclass(inference):
        raise TypeError(f"inference: {type(inference).__name__} must be a dataclass, whose fields a saved fit "
                        f"records (see ppgen.inference.Objective)")


def checkpointer(run: RunFolder | None, module: nn.Module, optimizer: torch.optim.Optimizer,
                 generator: torch.Generator | None, config: dict[str, Any],
                 group: Group = SINGLE, critic: tuple[nn.Module, torch.optim.Optimizer] | None = None,
                 carried: Callable[[], dict[str, torch.Tensor]] | None = None) -> Callable[[RunState], str] | None:
    """What writes the run's state into its folder (and records it in the manifest, with the seconds the run has
    trained in all its processes), or ``None`` without one; in a distributed fit every rank calls it at the same
    step, and rank 0 writes every rank's RNG states. ``critic``: a two-player run's critic and its optimiser;
    ``carried``: what gives the tensors the objective carries between steps, as they stand when a checkpoint is
    written (the objective may have moved them to the data's device)."""
    if run is None:
        return None
    earlier, started = run.seconds() if group.writer else 0.0, time.perf_counter()

    def save(state: RunState) -> str:
        rank_rng = group.gather_rng(generator)
        if group.writer:
            payload = state_payload(state, module, optimizer, generator, config, rank_rng=rank_rng, critic=critic,
                                    objective=carried() if carried is not None else None)
            run.write(CHECKPOINT, lambda f: torch.save(payload, f), seconds=earlier + time.perf_counter() - started)
        return str(run.path / CHECKPOINT)

    return save
