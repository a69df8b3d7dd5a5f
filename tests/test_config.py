"""The configs: overlays over the default, the merge order, and validation in process (the
JSON schema and curse_memory.checks.check_config, as workflow/rules/common.smk calls them);
one bad config goes through snakemake itself."""

from __future__ import annotations

import copy
import subprocess

import jsonschema
import pytest
import yaml
from conftest import BIN, DEFAULT, ROOT, SCHEMA, read_yaml
from snakemake.exceptions import WorkflowError

from curse_memory.checks import merge_config, overlay_of

OVERLAYS = sorted(
    str(p.relative_to(ROOT))
    for p in [*ROOT.glob("config/*.yaml"), *ROOT.glob("tests/config/*.yaml")]
    if p != DEFAULT
)


@pytest.mark.parametrize("path", OVERLAYS)
def test_every_overlay_holds_only_what_differs_and_validates(path, validate_config):
    overlay = read_yaml(ROOT / path)
    default = read_yaml(DEFAULT)
    config = validate_config(merge_config(default, overlay))
    # nothing in the overlay repeats the default (or, with it, the schema's defaults)
    assert overlay_of(overlay, default) == overlay, path
    assert len((ROOT / path).read_text().splitlines()) <= 40, path
    assert config["targets"] and config["seeds"]


def test_merge_order_mappings_by_key_lists_and_targets_replaced():
    default = {
        "targets": {"exp": {"kind": "linear"}, "pol": {"kind": "linear", "T": 10}},
        "train": {"steps": 10, "pack_by": ["seed", "target"]},
        "seeds": [1, 2, 3],
    }
    first = {"train": {"steps": 20}, "seeds": [7]}
    second = {"targets": {"pol": {"kind": "linear"}}, "train": {"pack_by": []}}
    merged = merge_config(default, first, second)
    assert merged == {
        "targets": {"pol": {"kind": "linear"}},  # the overlay's set, not the default's
        "train": {"steps": 20, "pack_by": []},  # key by key; a list is replaced
        "seeds": [7],
    }
    assert default["train"]["steps"] == 10  # the inputs are left alone
    assert merge_config(default, {}) == default
    assert merge_config(default, overlay_of(merged, default)) == merged


def test_the_workflow_applies_the_same_merge_as_snakemake_does(tmp_path):
    """Snakemake merges --configfile over the Snakefile's configfile key by key; the
    workflow then replaces the targets with the overlay's set. A dry run that prints the
    config it ended with agrees with merge_config."""
    overlay = {"targets": {"pol": {"kind": "linear", "kernel": "pol"}}, "seeds": [5]}
    overlay["train"] = {"steps": 7}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    (tmp_path / "Snakefile").write_text(
        f'workflow.include("{ROOT}/workflow/Snakefile", overwrite_default_target=True)\n'
        'import json\nprint("CONFIG=" + json.dumps(config))\n'
    )
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--configfile", "overlay.yaml", "--cores", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("CONFIG="))
    import json

    from conftest import validated

    assert json.loads(line[len("CONFIG=") :]) == validated(
        merge_config(read_yaml(DEFAULT), overlay)
    )


# ---------------------------------------------------------------------------- bad configs
_DELETE = object()
# (key to change, bad value, the key the error must name)
BAD_CONFIGS = [
    ("students.parameterisations", ["direct", "relu"], "students.parameterisations"),
    ("students.widths", [0, 8], "students.widths"),
    ("data.dt", -1.0, "data.dt"),
    ("perturbation.beta_step", 0.0, "perturbation.beta_step"),
    ("perturbation.beta_min", -0.001, "perturbation.beta_min"),
    ("students", _DELETE, "students"),
    ("train.steps", "many", "train.steps"),
    ("targets.pol.kernel", "gauss", "targets.pol.kernel"),
    ("targets.pol.kernel_params", {"s": 0.1, "q": 1.1}, "targets.pol.kernel_params"),
    ("train.stpes", 10, "train.stpes"),
    ("students.activations", ["relu"], "students.activations"),
    ("students.structures", ["circulant"], "students.structures"),
    ("students.eig_init", [0.2, 2.5], "students.eig_init"),
    ("perturbation.norms", ["l1"], "perturbation.norms"),
    ("seeds", [], "seeds"),
    ("targets.pol.kind", "transformer", "targets.pol.kind"),
    ("train.pack_by", ["width"], "train.pack_by"),
    ("students.init", "xavier", "students.init"),
    ("perturbation.lost_factor", 0, "perturbation.lost_factor"),
    ("claims.radius", {"tanh": "sometimes"}, "claims.radius.tanh"),
    ("targets.exp.kernel_params", {"a": -1.0}, "targets.exp.kernel_params.a"),
    ("targets.pol.kernel_params", {"s": 0.1, "p": 0.0}, "targets.pol.kernel_params.p"),
    ("memory.fit_from", 10000, "memory.fit_from"),
    ("targets.pol.T", 400, "train.pack_by"),  # one pack would hold two horizons
    ("students.families", ["rnn", "transformer"], "students.families"),
    ("train.schedule", "linear", "train.schedule"),
    (
        "targets.pol",
        {"kind": "teacher_transformer", "transformer_width": 16, "transformer_heads": 3},
        "targets.pol.transformer_heads",
    ),
]


def changed(config: dict, dotted: str, value) -> dict:
    config = copy.deepcopy(config)
    *path, last = dotted.split(".")
    node = config
    for key in path:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return config


def named_keys(config: dict, validate_config) -> list[str]:
    """Validate ``config`` as the workflow does; the dotted keys its error names: each
    schema error's path (with the property it names, for a missing or an unknown one), or
    the key of a check_config error ("config <key>: <why>")."""
    try:
        validate_config(config)
    except ValueError as error:
        return [error.args[0].split(":")[0].removeprefix("config ")]
    except WorkflowError:
        schema = read_yaml(SCHEMA)
        validator = jsonschema.validators.validator_for(schema)(schema)
        keys = []
        for err in validator.iter_errors(config):
            for e in [err, *err.context]:
                path = [str(p) for p in e.absolute_path if not isinstance(p, int)]
                keys.append(".".join(path))
                if e.validator in ("required", "additionalProperties"):
                    keys += [".".join([*path, n]) for n in e.message.split("'")[1::2]]
        assert keys, "snakemake's validation failed where jsonschema's passes"
        return keys
    raise AssertionError("the config passed validation")


@pytest.mark.parametrize("key,value,named", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_fails_at_validation_naming_the_key(
    default_config, validate_config, key, value, named
):
    keys = named_keys(changed(default_config, key, value), validate_config)
    assert named in keys, keys


def test_best_with_unreachable_init_is_rejected(default_config, validate_config):
    config = changed(default_config, "students.parameterisations", ["best"])
    config = changed(config, "students.eps", 1.5)
    assert named_keys(config, validate_config) == ["students.eps"]


@pytest.mark.workflow
def test_snakemake_stops_a_bad_config_before_any_job(tmp_path):
    """The end-to-end case: snakemake itself validates an overlay and schedules nothing."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"data": {"dt": -1.0}}))
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--configfile", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "validating config" in out and "'dt'" in out, out[-2000:]
    assert "Job stats" not in out  # nothing was scheduled


# ------------------------------------------------------------------ plug-in families
@pytest.mark.parametrize(
    "spec, reason",
    [
        ("no_such_package.module:Family", "module 'no_such_package.module' is not importable"),
        ("curse_memory.families.base:Missing", "has no 'Missing'"),
        ("curse_memory.families.base:Family", "lacks name, batch_key, init, forward"),
    ],
)
def test_a_broken_plugin_family_fails_validation_with_its_key_and_reason(
    spec, reason, default_config, validate_config
):
    config = merge_config(default_config, {"students": {"families": ["rnn", spec]}})
    with pytest.raises(ValueError, match="config students.families") as info:
        validate_config(config)
    assert spec in str(info.value) and reason in str(info.value)


def test_a_family_name_is_a_built_in_name_or_a_module_path(default_config, validate_config):
    for bad in ("Bad Name", "a:b:c", "lru/../x"):
        config = merge_config(default_config, {"students": {"families": [bad]}})
        with pytest.raises(WorkflowError):
            validate_config(config)
    config = merge_config(default_config, {"students": {"families": ["transformer"]}})
    with pytest.raises(ValueError, match="config students.families: unknown family"):
        validate_config(config)


def test_the_example_plugin_validates_and_names_its_paths(
    default_config, validate_config, monkeypatch
):
    from curse_memory import families

    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    spec = "plugin_family.module:GatedLinear"
    validate_config(merge_config(default_config, {"students": {"families": ["lru", spec]}}))
    family = families.get(spec)
    assert family.name == "glr" and families.get("glr") is family and not family.axes
