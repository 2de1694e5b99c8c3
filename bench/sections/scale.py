"""The sections on scale: log p(x) at scale (``bench/evaluate.json``), the step time against batch, width, K and
N (``bench/scale.json``), and an epoch of Fashion-MNIST (``bench/fashion.json``)."""

from __future__ import annotations

from .formatting import side_json


def evaluate_section() -> str:
    """``bench/evaluate.py``'s table: log p(x) throughput and peak memory against the hand-written chunked loop."""
    data = side_json("evaluate.json")
    if data is None:
        return ""
    lines = ["| N | K | throughput, ppgen / hand-written | `compile=True`, a new fit's first query | "
             "`compile=True`, a later query | peak MiB, ppgen | peak MiB, hand-written |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in data["rows"]:
        compiled = [f"{row[key]:.2f}" if key in row else "n/a"
                    for key in ("compiled_first_throughput_ratio", "compiled_throughput_ratio")]
        lines.append(f"| {row['n']} | {row['k']} | {row['throughput_ratio']:.2f} | {' | '.join(compiled)} | "
                     f"{row['ppgen_peak_mib']:.0f} | {row['handwritten_peak_mib']:.0f} |")
    budget = ["| particles x points per pass | peak MiB, ppgen | peak MiB, hand-written | throughput ratio |",
              "|---:|---:|---:|---:|"]
    for row in data["budgets"]:
        budget.append(f"| {row['particle_points_per_pass']} | {row['ppgen_peak_mib']:.0f} "
                      f"| {row['handwritten_peak_mib']:.0f} | {row['throughput_ratio']:.2f} |")
    skipped = ", ".join(f"N={row['n']} K={row['k']}" for row in data["skipped"]) or "none"
    return f"""
## log p(x) at scale

`fit.log_prob(x, k=K)` against a hand-written chunked loop of the same estimate, both in passes of at most
`ppgen.queries.density.PARTICLE_POINTS_PER_PASS` = {data['default_particle_points_per_pass']} particles x points
(the chunk budget: set that attribute to trade memory for speed). `fit.log_prob(x, k=K, compile=True)` traces a
pass once per chunk shape and compiles it with inductor when the shape comes back (a shape met once, such as the last,
smaller chunk, is replayed as traced until a later query meets it again); the fit keeps the graphs for its later
queries, which check each graph once more against the plain pass on its first chunk. The first query of a fit pays
the capture and compilation (seconds; inductor's cache warm after the first configuration), which the larger
queries repay; a later query replays. Throughput ratio above 1: ppgen faster. Peak: the resident
set's peak above its level before the query. Measured {data['date']} on a shared 2-core machine, interleaved,
torch.set_num_threads(1), by `{data['command']}`; left out as too long here (run them with `--full`): {skipped}.

{chr(10).join(lines)}

Peak memory against the chunk budget, N = 1000, K = 1000 (measured in one process: a query whose memory the
allocator had kept from an earlier one reads lower, down to 0):

{chr(10).join(budget)}
"""


def scale_section() -> str:
    """``bench/scale.py``'s picture and where the per-step overhead stops mattering."""
    data = side_json("scale.json")
    if data is None:
        return ""
    rows = {(row["varied"], row["setting"][row["varied"]]): row for row in data["rows"]}
    biggest = max((row for row in data["rows"] if row["varied"] == "batch size"),
                  key=lambda row: row["setting"]["batch size"])
    smallest = min((row for row in data["rows"] if row["varied"] == "batch size"),
                   key=lambda row: row["setting"]["batch size"])
    ratio = lambda row, side: row[side] / row["handwritten"]  # noqa: E731
    compiled = (f"; the compiled step's: from {ratio(smallest, 'compiled'):.2f} to {ratio(biggest, 'compiled'):.2f}"
                if "compiled" in smallest else "")
    return f"""
## How the step time scales

![Step time as a ratio to hand-written PyTorch against batch size, width, K and N](images/scale.png)

`bench/scale.py` varies one setting at a time from the speed figures' (batch 128, width 400, K = 1, N = 1437).
The plain step's ratio goes from {ratio(smallest, 'plain'):.2f} at batch {smallest['setting']['batch size']} to
{ratio(biggest, 'plain'):.2f} at batch {biggest['setting']['batch size']} (the captured step's: from
{ratio(smallest, 'captured'):.2f} to {ratio(biggest, 'captured'):.2f}{compiled}): the fixed cost per step matters
less as the work per step grows. The size of the data set N leaves it where it was (plain step:
{", ".join(f"{ratio(rows[key], 'plain'):.2f}" for key in sorted(k for k in rows if k[0] == 'N'))} for N =
{", ".join(str(key[1]) for key in sorted(k for k in rows if k[0] == 'N'))}).
Measured {data['date']} on a shared 2-core machine, interleaved,
torch.set_num_threads(1), {data['steps']} steps x {data['repeats']} rounds per point.
"""


def fashion_section() -> str:
    """``bench/fashion.py``'s time per epoch on Fashion-MNIST, as ratios."""
    data = side_json("fashion.json")
    if data is None:
        return ""
    paths = {"plain": "`ppgen.fit`", "capture": "`ppgen.fit(compile='capture')`",
             "compiled": "`ppgen.fit(compile=True)`"}
    shown = [path for path in paths if all(f"{path}_ratio" in row for row in data["rows"])]
    lines = ["| objective | " + " | ".join(f"{paths[path]} / hand-written" for path in shown) + " |",
             "|---|" + "---:|" * len(shown)]
    for row in data["rows"]:
        lines.append(f"| {row['bound']} | " + " | ".join(f"{row[f'{path}_ratio']:.2f}" for path in shown) + " |")
    return f"""
## Fashion-MNIST, one epoch

Time per epoch of `VAE(x_dim=784, z_dim=32, hidden=(400,))` on the {data['images']} binarised training images
(batch 128, {data.get('optimizer', 'torch.optim.Adam')} on both sides), after an untimed warm-up epoch of each path on
the first 2048 images, one epoch per run, the paths interleaved, the median of {data['repeats']} rounds (the capture's
trace and the compilation, inductor's cache warm, counted in their epochs), measured {data['date']} \
on a shared 2-core machine, torch.set_num_threads(1), by
`{data['command']}`:

{chr(10).join(lines)}
"""
