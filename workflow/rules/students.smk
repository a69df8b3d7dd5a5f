# one rule per group of families (common.smk: FAMILY_GROUPS): a pack's members, hence the
# rule's outputs, depend on which axes apply
for _group, _families in FAMILY_GROUPS.items():

    rule:
        name:
            f"train_students{RULE_SUFFIX[_group]}"
        input:
            targets=pack_targets,
            previous=previous_width_metrics,
        output:
            models=pack_outputs("students", _group, file="model.pt"),
            histories=pack_outputs("students", _group, file="history.tsv"),
            metrics=pack_outputs("students", _group, file="metrics.json"),
        # the script's checkpoint (train.checkpoint_every) is results/checkpoints/ + the log
        # path: no declared output, so Snakemake keeps it when the job fails or is killed,
        # and the rerun resumes from it
        log:
            pack_path("logs/train_students", ".log"),
        benchmark:
            pack_path("benchmarks/train_students", ".tsv")
        wildcard_constraints:
            family="|".join(_families),
        priority: train_priority
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=120,
        params:
            members=members,
            student=student_config,
            train=train_settings,
            monotone_factor=monotone_factor,
        script:
            "../scripts/train_students.py"
