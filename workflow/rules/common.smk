import re
from itertools import product

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")


def check_config(config):
    """Cross-key checks that JSON Schema cannot express; each error names its key."""
    dt = config["data"]["dt"]
    students = config["students"]
    lo, hi = students["eig_init"]
    if lo > hi:
        raise ValueError(f"config students.eig_init: need lo <= hi, got {[lo, hi]}")
    if dt * hi >= 2:
        raise ValueError(
            f"config students.eig_init: dt * hi = {dt * hi} breaks the Euler bound dt*a < 2"
        )
    if "best" in students["parameterisations"] and hi >= 1 / students["eps"]:
        raise ValueError(
            f"config students.eps: best reaches at most 1/eps = {1 / students['eps']:.3g} "
            f"< eig_init hi = {hi}; lower eps or hi"
        )
    for name, spec in config["targets"].items():
        t_lo, t_hi = spec.get("teacher_eig", [0.3, 1.0])
        if not t_lo <= t_hi or dt * t_hi >= 2:
            raise ValueError(
                f"config targets.{name}.teacher_eig: need lo <= hi and dt*hi < 2, "
                f"got {[t_lo, t_hi]}"
            )


check_config(config)

TARGETS = list(config["targets"])
STRUCTURES = config["students"]["structures"]
PARAMS = config["students"]["parameterisations"]
ACTIVATIONS = config["students"]["activations"]
WIDTHS = sorted(config["students"]["widths"])
SEEDS = config["seeds"]


wildcard_constraints:
    target="|".join(map(re.escape, TARGETS)),
    structure="|".join(STRUCTURES),
    param="|".join(PARAMS),
    activation="|".join(ACTIVATIONS),
    width=r"\d+",
    seed=r"\d+",


def student_grid():
    """Every trained student, as a dict of wildcard values, in a fixed order."""
    keys = ("target", "structure", "param", "activation", "width", "seed")
    grid = product(TARGETS, STRUCTURES, PARAMS, ACTIVATIONS, WIDTHS, SEEDS)
    return [dict(zip(keys, values)) for values in grid]


def student_files(pattern):
    return [pattern.format(**s) for s in student_grid()]


def target_spec(wildcards):
    """TargetSpec fields of one target: its config entry over the shared data settings."""
    data = config["data"]
    spec = {k: data[k] for k in ("T", "dt", "d", "input", "sigma")}
    return spec | config["targets"][wildcards.target]


def split_sizes(wildcards):
    return {k: config["data"][k] for k in ("n_train", "n_val", "n_test")}


def student_config(wildcards):
    """StudentConfig fields of one student."""
    students = config["students"]
    return {
        "width": int(wildcards.width),
        "structure": wildcards.structure,
        "parameterisation": wildcards.param,
        "activation": wildcards.activation,
        "dt": config["data"]["dt"],
        "eps": students["eps"],
        "eig_init": students["eig_init"],
        "d_in": config["data"]["d"],
        "dtype": students["dtype"],
    }


def train_settings(wildcards):
    """TrainConfig fields (width monotonicity is resolved through the DAG, not here)."""
    skip = ("width_monotone", "monotone_factor")
    return {k: v for k, v in config["train"].items() if k not in skip}


def monotone_factor(wildcards):
    return (
        config["train"]["monotone_factor"]
        if config["train"]["width_monotone"]
        else None
    )


def previous_width_metrics(wildcards):
    """Width monotonicity as a DAG edge: the next narrower student's metrics, if any."""
    width = int(wildcards.width)
    if not config["train"]["width_monotone"] or width == WIDTHS[0]:
        return []
    narrower = WIDTHS[WIDTHS.index(width) - 1]
    path = "results/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}/metrics.json"
    return path.format(**(dict(wildcards) | {"width": narrower}))


FIGURES = [
    "target_memory",
    "stability_radius",
    "student_memory",
    "training",
    "sensitivity",
]
TABLES = ["training", "history", "perturbation", "stability_radius", "crossings"]
TABLES += ["memory", "memory_fit", "claims", "slopes"]


def figure_names():
    return FIGURES + [f"perturbation_{t}" for t in TARGETS]


def figure_files():
    return [
        f"results/figures/{n}.{ext}" for n in figure_names() for ext in ("png", "pdf")
    ]


def get_final_output():
    return [f"results/tables/{t}.tsv" for t in TABLES] + figure_files()
