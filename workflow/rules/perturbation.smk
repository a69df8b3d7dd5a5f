for _group, _families in FAMILY_GROUPS.items():

    rule:
        name:
            f"evaluate_perturbation{RULE_SUFFIX[_group]}"
        input:
            targets=pack_targets,
            models=pack_files("students", file="model.pt"),
        output:
            tables=pack_outputs("perturbation", _group, ".tsv"),
            draws=pack_outputs("perturbation", _group, "_draws.tsv"),
        log:
            pack_path("logs/evaluate_perturbation", ".log"),
        benchmark:
            pack_path("benchmarks/evaluate_perturbation", ".tsv")
        wildcard_constraints:
            family="|".join(_families),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        params:
            members=members,
            perturbation=lookup(dpath="perturbation", within=config),
        script:
            "../scripts/evaluate_perturbation.py"
