import importlib.util
import math
import os
import re
import sys
from itertools import product
from pathlib import Path

from snakemake.utils import validate


def load_checks():
    """curse_memory/checks.py on its own (no torch), found through Snakemake's source path,
    so this works from a clone and as a module (also a remote one); the rule scripts
    import the whole package from next to themselves. The package next to it (a clone, a
    local module) goes on sys.path for the families' registry (torch-free too), which
    otherwise comes from an installed curse_memory (``pip install -e .``)."""
    path = workflow.source_path("../scripts/curse_memory/checks.py")
    flags = getattr(path, "flags", {})
    local = Path(str(flags.get("sourcecache_entry", path)))  # not the cache's copy
    scripts = str(local.resolve().parents[1])
    if (local.parent / "families").is_dir() and scripts not in sys.path:
        sys.path.insert(0, scripts)
    spec = importlib.util.spec_from_file_location("curse_memory_checks", path)
    checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks)
    return checks


checks = load_checks()

# Snakemake merged the --configfile overlays (and --config) over config/config.yaml key by
# key; targets are a set of named targets, so an overlay that names targets gives the
# whole set (checks.merge_config, the documented order). Skipped for a module, whose
# config is the one its user passes.
if not workflow.modifier.skip_configfile:
    _overlay = workflow.config_settings.overwrite_config
    if "targets" in _overlay:
        config["targets"] = checks.merge_config({}, _overlay)["targets"]

validate(config, schema="../schemas/config.schema.yaml")
checks.check_config(config)  # imports the plug-in families (package.module:Name)

from curse_memory import families  # noqa: E402  (the registry; after check_config)

TARGETS = list(config["targets"])
# the families as the config names them (a built-in name or a plug-in's module:Name), and
# their names in paths and tables (a plug-in's ``name``); a job's StudentConfig gets the
# config's spec, so that its fresh process imports the plug-in again
FAMILY_SPECS = {families.get(s).name: s for s in config["students"]["families"]}
FAMILIES = list(FAMILY_SPECS)
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
    group: [f for f in FAMILIES if families.get(f).axes == (group == "axes")]
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
    return "axes" if families.get(family).axes else "fixed"


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
        "family": FAMILY_SPECS[wildcards.family],
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
    """TrainConfig fields (width monotonicity is resolved through the DAG, not here;
    checkpoint_every, which changes no result, is read by the script from the config, so
    that changing it reruns nothing)."""
    skip = ("width_monotone", "monotone_factor", "pack_by", "checkpoint_every")
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


def memory_rate_floor():
    """The slowest decay rate the memory window resolves: a fit that falls by less than a
    factor 2 over [fit_from, horizon * dt] reads "non-decaying" (memory.decay_fit)."""
    memory = config["memory"]
    return math.log(2) / (memory["horizon"] * config["data"]["dt"] - memory["fit_from"])
