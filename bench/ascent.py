"""How much projected gradient ascent raises E_m(beta) over sampling (method §3, "Ascent").

Run as ``PYTHONPATH=workflow/scripts python bench/ascent.py [--root RUN/results]``: for
trained students of a finished run (read only), the E_m(beta) of the sampled draws and of
the ascent started from them, at a few betas of the default grid, both norms, in float64
on the test split of the student's target. Prints one line per (student, norm, beta)

    ascent target=.. param=.. activation=.. width=.. norm=.. beta=.. sample=.. ascent=.. ratio=..x

and a summary of the ratios per norm and width; ``--out`` writes them as a TSV. Students
that do not exist (yet) are skipped and listed.

Measured (seed 1, diagonal rnn, exp and pol, direct and softplus, linear and tanh, 10 draws,
20 steps of 0.1 beta, float64, 256 test sequences; m = 2 from the verdicts run, m = 8 and
14 trained with the default settings but no width-monotone target): median ratio of the
ascended to the sampled E_m(beta) over the 8 students, at beta = 0.004 / 0.016 / 0.064 /
0.256: inf 1.2 / 1.4 / 1.5 / 2.1 at m = 2, 4.2 / 4.9 / 9.8 / 17 at m = 8, 13 / 15 / 14 /
29 at m = 14; l2 2.0 / 2.8 / 3.4 / 3.4, 3.3 / 6.3 / 9.2 / 8.6, 7.9 / 14 / 23 / 25. The
smallest ratio at m = 14 is 3.2. 60 steps raise the ascended error by at most ~10% more.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from curse_memory.model import load_student, read_checkpoint, retyped
from curse_memory.perturbation import beta_grid, perturbation_sweep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="results/verdicts/results", help="a run's results/")
    parser.add_argument("--targets", nargs="+", default=["exp", "pol"])
    parser.add_argument("--params", nargs="+", default=["direct", "softplus"])
    parser.add_argument("--activations", nargs="+", default=["linear", "tanh"])
    parser.add_argument("--widths", nargs="+", type=int, default=[2, 8, 14])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--norms", nargs="+", default=["inf", "l2"])
    parser.add_argument("--betas", nargs="+", type=float, help="default: 4 of the default grid")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-size", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="TSV of every line")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = beta_grid()  # the default grid: 1e-3 * 2^(i/2)
    betas = args.betas or [grid[i] for i in (5, 9, 13, 17)]  # 0.004, 0.016, 0.064, 0.256
    root = Path(args.root)
    rows, missing = [], []
    for target in args.targets:
        data = read_checkpoint(root / "targets" / target / f"s{args.seed}.pt")
        x, y = data["x_test"].double(), data["y_test"].double()
        for param in args.params:
            for activation in args.activations:
                for width in args.widths:
                    student = "/".join(
                        [target, "rnn", "diagonal", param, activation, f"w{width}", f"s{args.seed}"]
                    )
                    path = root / "students" / student / "model.pt"
                    if not path.exists():
                        missing.append(student)
                        continue
                    model = retyped(load_student(path)[0], "float64").requires_grad_(False)
                    for norm in args.norms:
                        start = time.perf_counter()
                        sweep = perturbation_sweep(
                            model, x, y, betas, args.repeats, norm,
                            torch.Generator().manual_seed(args.seed),
                            method="ascent", steps=args.steps, step_size=args.step_size,
                        )  # fmt: skip
                        seconds = time.perf_counter() - start
                        for row in sweep:
                            sample, ascent = max(row["errors_sampled"]), row["error"]
                            rows.append(
                                {
                                    "target": target,
                                    "param": param,
                                    "activation": activation,
                                    "width": width,
                                    "norm": norm,
                                    "beta": row["beta"],
                                    "sample": sample,
                                    "ascent": ascent,
                                    "ratio": ascent / sample,
                                    "seconds": seconds / len(betas),
                                }
                            )
                            line = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else
                                            f"{k}={v}" for k, v in rows[-1].items())  # fmt: skip
                            print(f"ascent {line}", flush=True)
    for student in missing:
        print(f"missing {student}", file=sys.stderr)
    if not rows:
        return 1
    table = pd.DataFrame(rows)
    summary = table.groupby(["norm", "width"])["ratio"].agg(["min", "median", "max"])
    print(summary.to_string(float_format=lambda v: f"{v:.3g}"))
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
