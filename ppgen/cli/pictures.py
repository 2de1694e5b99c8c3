"""The pictures of a ``ppgen fit`` run: samples.png, latent.png (where the model has latents to encode) and loss.png,
each recorded in the run's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppgen.cli import common, data_sets

if TYPE_CHECKING:
    import ppgen


def draw_pictures(fit: ppgen.Fit, data: data_sets.Data, folder: Any, seed: int) -> tuple[list[str], str | None]:
    """samples.png, latent.png (where the model has latents) and loss.png, each recorded in the manifest;
    returns their names, and why latent.png was skipped (``None`` where it was drawn)."""
    import pyro

    from ppgen import plots

    pyro.set_rng_seed(seed)
    x, title = common.pictured_samples(fit, common.N_SAMPLES, data.is_image)
    common.draw_samples(x, folder.path / "samples.png", reference=None if data.is_image else data.test, title=title)
    folder.record("samples.png")
    names = ["samples.png"]
    skipped = draw_latent(fit, data, folder.path / "latent.png")
    if skipped is None:
        folder.record("latent.png")
        names.append("latent.png")
    else:
        folder.forget("latent.png")  # a picture left by an earlier run in the same folder would mislead
    plots.loss_curve(fit.history, folder.path / "loss.png",
                     title=f"training loss, {common.objective_label(fit.inference)}",
                     ylabel=f"loss ({fit.inference.units})")
    folder.record("loss.png")
    names.append("loss.png")
    return names, skipped


def draw_latent(fit: ppgen.Fit, data: data_sets.Data, path: Path) -> str | None:
    """Draws a 2-D view of E[z|x] over the test set, for the latent site z that ``fit.encode`` answers about.

    For a discrete site c that the model sums out, E[c|x] is the posterior p(c|x) (see :meth:`ppgen.Fit.encode`).
    Returns why not when the model has no latent site to encode.
    """
    import torch

    from ppgen import plots

    try:
        z = fit.encode(data.test)
    except ValueError as error:
        path.unlink(missing_ok=True)  # a picture left by an earlier run in the same folder would mislead
        return str(error)
    site = fit.latent_sites[0] if fit.latent_sites else "z"  # a flow: encode is its map to the base space
    z = z.detach().cpu().double().reshape(len(z), -1)
    title = f"posterior means E[{site} | x], test set"
    if z.shape[1] == 1:
        plots.scatter(torch.cat([z, torch.zeros_like(z)], dim=1), path, labels=data.test_labels,
                      title=title, xlabel=site, ylabel=f"({site} is 1-D)")
        return None
    if z.shape[1] == 2:
        plots.scatter(z, path, labels=data.test_labels, title=title, xlabel=f"{site}[0]", ylabel=f"{site}[1]")
        return None
    if not bool((z.var(0) > 0).any()):  # no spread, so no principal directions: every point at one place
        plots.scatter(z[:, :2], path, labels=data.test_labels, title=title + " (the same for every point)",
                      xlabel=f"{site}[0]", ylabel=f"{site}[1]")
        return None
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2)
    z2 = pca.fit_transform(z.numpy())
    share = pca.explained_variance_ratio_ * 100
    plots.scatter(z2, path, labels=data.test_labels, title=title + f" (PCA of {z.shape[1]}-D {site})",
                  xlabel=f"PC 1 ({share[0]:.0f}% of variance)", ylabel=f"PC 2 ({share[1]:.0f}% of variance)")
    return None
