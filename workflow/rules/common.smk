import os
import re
import sys
from itertools import product

from snakemake.utils import validate

# the shared package's torch-free checks (the rule scripts import the rest of it)
sys.path.insert(0, os.path.join(workflow.current_basedir, "..", "scripts"))
from curse_memory.checks import (
    AXES_APPLY,
    best_reach_problem,
    eig_init_problem,
    transformer_problem,
)

validate(config, schema="../schemas/config.schema.yaml")


def check_config(config):
    """Cross-key checks that JSON Schema cannot express; each error names its key."""
    dt = config["data"]["dt"]
    students = config["students"]
    lo, hi = students["eig_init"]
    problem = eig_init_problem(lo, hi, dt)
    if problem:
        raise ValueError(f"config students.eig_init: {problem}")
    problem = best_reach_problem(hi, students["eps"])
    if "best" in students["parameterisations"] and problem:
        raise ValueError(f"config students.eps: {problem}")
    train = config["train"]
    if train["monotone_steps"] is not None and train["monotone_steps"] < train["steps"]:
        raise ValueError(
            f"config train.monotone_steps: {train['monotone_steps']} is below train.steps "
            f"({train['steps']}); it is the longer budget of students chasing a target"
        )
    pack_by = config["train"]["pack_by"]
    horizons = {
        spec.get("T", config["data"]["T"]) for spec in config["targets"].values()
    }
    if "target" in pack_by and len(horizons) > 1:
        raise ValueError(
            "config train.pack_by: 'target' packs students of different targets into one "
            f"model, which needs one horizon T, but the targets have T in {sorted(horizons)}; "
            "allowed here: [seed] or []"
        )
    memory = config["memory"]
    if memory["fit_from"] >= memory["horizon"] * dt:
        raise ValueError(
            f"config memory.fit_from: {memory['fit_from']} is at or beyond the horizon "
            f"({memory['horizon']} steps x dt = {memory['horizon'] * dt}): every tail fit "
            "would be empty; lower fit_from or raise memory.horizon"
        )
    for name, spec in config["targets"].items():
        params = spec.get("kernel_params", {})
        for key in (
            ("a", "s", "p") if spec.get("kernel", "exp") in ("exp", "pol") else ()
        ):
            if key in params and not params[key] > 0:
                raise ValueError(
                    f"config targets.{name}.kernel_params.{key}: must be > 0, got "
                    f"{params[key]} (a decaying memory kernel needs a positive rate)"
                )
        t_lo, t_hi = spec.get("teacher_eig", [0.3, 1.0])
        if not t_lo <= t_hi or dt * t_hi >= 2:
            raise ValueError(
                f"config targets.{name}.teacher_eig: need lo <= hi and dt*hi < 2, "
                f"got {[t_lo, t_hi]}"
            )
        problem = transformer_problem(name, spec, memory["horizon"])
        if problem:
            raise ValueError(problem)


check_config(config)

TARGETS = list(config["targets"])
FAMILIES = config["students"]["families"]
STRUCTURES = config["students"]["structures"]
PARAMS = config["students"]["parameterisations"]
ACTIVATIONS = config["students"]["activations"]
WIDTHS = sorted(config["students"]["widths"])
SEEDS = config["seeds"]
# method §6: lru, lstm and gru have no structure, parameterisation or activation; their
# paths and tables say "none" there. Each group of families gets its own pack rules (a
# pack's members, hence a rule's outputs, differ with the axes that apply).
NONE = "none"
FAMILY_GROUPS = {
    group: [f for f in FAMILIES if AXES_APPLY[f] == (group == "axes")]
    for group in ("axes", "fixed")
}
FAMILY_GROUPS = {group: fams for group, fams in FAMILY_GROUPS.items() if fams}
RULE_SUFFIX = {"axes": "", "fixed": "_fixed"}


def _choices(values, group):
    """The values of structure, param or activation in a group of families."""
    return values if group == "axes" else [NONE]


wildcard_constraints:
    target="|".join(map(re.escape, TARGETS)),
    family="|".join(FAMILIES),
    structure="|".join(v for g in FAMILY_GROUPS for v in _choices(STRUCTURES, g)),
    param="|".join(v for g in FAMILY_GROUPS for v in _choices(PARAMS, g)),
    activation="|".join(v for g in FAMILY_GROUPS for v in _choices(ACTIVATIONS, g)),
    width=r"\d+",
    seed=r"\d+",


# The path grammar of one student, written once: one directory per grid axis, in order.
GRAMMAR = {
    "target": "{target}",
    "family": "{family}",
    "structure": "{structure}",
    "param": "{param}",
    "activation": "{activation}",
    "width": "w{width}",
    "seed": "s{seed}",
}
STUDENT = "/".join(GRAMMAR.values())


def group_of(family):
    return "axes" if AXES_APPLY[family] else "fixed"


def axes(group):
    """Every grid axis and its values in one group of families."""
    return {
        "target": TARGETS,
        "family": FAMILY_GROUPS[group],
        "structure": _choices(STRUCTURES, group),
        "param": _choices(PARAMS, group),
        "activation": _choices(ACTIVATIONS, group),
        "width": WIDTHS,
        "seed": SEEDS,
    }


# packed axes: one job trains (and evaluates) every student along them as one pack
PACK_BY = [a for a in GRAMMAR if a in config["train"]["pack_by"]]
# a memory job takes every width of its pack too: its estimate takes about a second per
# width, a job's start-up about 2.5 s (it needs no narrower student, as training does)
MEMORY_PACK_BY = [a for a in GRAMMAR if a in PACK_BY or a == "width"]


def student_path(stage, suffix="", file=""):
    """results/<stage>/<student path><suffix>[/<file>], with the grid wildcards."""
    path = f"results/{stage}/{STUDENT}{suffix}"
    return os.path.join(path, file) if file else path


def pack_path(folder, suffix, by=PACK_BY):
    """<folder>/<pack path><suffix>: logs and benchmarks of one pack job (packed along
    ``by``); a packed axis reads all-<axis>s."""
    pack = STUDENT
    for axis in by:
        pack = pack.replace(GRAMMAR[axis], f"all-{axis}s")
    return f"{folder}/{pack}{suffix}"


def student_grid():
    """Every trained student, as a dict of wildcard values, in a fixed order."""
    return [
        dict(zip(GRAMMAR, values))
        for group in FAMILY_GROUPS
        for values in product(*axes(group).values())
    ]


def student_files(pattern):
    return [pattern.format(**s) for s in student_grid()]


def pack_members(group, by=PACK_BY):
    """The packed axes' values of each member of a pack, in a fixed order."""
    values = axes(group)
    return [dict(zip(by, v)) for v in product(*(values[a] for a in by))]


def pack_outputs(stage, group, suffix="", file="", by=PACK_BY):
    """Output patterns of a pack job: one per member, the other axes as wildcards."""
    keep = {a: f"{{{a}}}" for a in GRAMMAR if a not in by}
    path = student_path(stage, suffix, file)
    return [path.format(**keep, **m) for m in pack_members(group, by)]


def members(wildcards, by=PACK_BY):
    """Every student of the pack named by ``wildcards``, as complete dicts of axis values
    in the grammar's order."""
    fixed = {a: wildcards[a] for a in GRAMMAR if a not in by}  # family is never packed
    packed = pack_members(group_of(wildcards["family"]), by)
    return [{a: str((fixed | m)[a]) for a in GRAMMAR} for m in packed]


def memory_members(wildcards):
    """The students of a memory job (every width of a training pack)."""
    return members(wildcards, MEMORY_PACK_BY)


def pack_targets(wildcards):
    """The target data of each member (a member's target and seed)."""
    return [
        f"results/targets/{m['target']}/s{m['seed']}.pt" for m in members(wildcards)
    ]


def pack_files(stage, suffix="", file="", by=PACK_BY):
    """Input function: the per-student files of a pack's members, in member order."""

    def files(wildcards):
        return [
            student_path(stage, suffix, file).format(**m)
            for m in members(wildcards, by)
        ]

    return files


def target_spec(wildcards):
    """TargetSpec fields of one target: its config entry over the shared data settings."""
    data = config["data"]
    spec = {k: data[k] for k in ("T", "dt", "d", "input", "sigma")}
    return spec | config["targets"][wildcards.target]


def split_sizes(wildcards):
    return {k: config["data"][k] for k in ("n_train", "n_val", "n_test")}


def student_config(wildcards):
    """StudentConfig fields shared by the members of a pack (packed axes vary the data,
    seed, target and eigenvalue map f, never the model's shape); each member's
    parameterisation comes with its axis values."""
    students = config["students"]
    return {
        "family": wildcards.family,
        "width": int(wildcards.width),
        "structure": wildcards.structure,
        "activation": wildcards.activation,
        "dt": config["data"]["dt"],
        "eps": students["eps"],
        "eig_init": students["eig_init"],
        "init": students["init"],
        "d_in": config["data"]["d"],
        "dtype": students["dtype"],
    }


def train_settings(wildcards):
    """TrainConfig fields (width monotonicity is resolved through the DAG, not here)."""
    skip = ("width_monotone", "monotone_factor", "pack_by")
    return {k: v for k, v in config["train"].items() if k not in skip}


def monotone_factor(wildcards):
    return (
        config["train"]["monotone_factor"]
        if config["train"]["width_monotone"]
        else None
    )


def train_priority(wildcards):
    """Scheduling priority of a training job: the widths left on its chain, its own
    included, counted double for a time-loop student (about twice a linear student's
    convolution step). With width monotonicity each width waits for the narrower one, so
    the longest chains are the critical path: among ready jobs, theirs start first (the
    perturbation and memory jobs, priority 0, fill the gaps)."""
    width = int(wildcards.width)
    left = sum(w >= width for w in WIDTHS) if config["train"]["width_monotone"] else 1
    return left * (1 if wildcards.activation == "linear" else 2)


def previous_width_metrics(wildcards):
    """Width monotonicity as a DAG edge between packs: each member's next narrower
    student's metrics, in member order (none for the narrowest width)."""
    width = int(wildcards.width)
    if not config["train"]["width_monotone"] or width == WIDTHS[0]:
        return []
    narrower = str(WIDTHS[WIDTHS.index(width) - 1])
    path = student_path("students", file="metrics.json")
    return [path.format(**(m | {"width": narrower})) for m in members(wildcards)]


FIGURES = [
    "target_memory",
    "stability_radius",
    "student_memory",
    "training",
    "sensitivity",
]
TABLES = ["training", "history", "perturbation", "stability_radius", "crossings"]
TABLES += ["memory", "memory_fit", "claims", "slopes", "families"]


def figure_names():
    return FIGURES + [f"perturbation_{t}" for t in TARGETS]


def figure_files():
    return [
        f"results/figures/{n}.{ext}" for n in figure_names() for ext in ("png", "pdf")
    ]


def get_final_output():
    return [f"results/tables/{t}.tsv" for t in TABLES] + figure_files()
