rule train_students:
    input:
        targets=pack_targets,
        previous=previous_width_metrics,
    output:
        models=pack_outputs("students", file="model.pt"),
        histories=pack_outputs("students", file="history.tsv"),
        metrics=pack_outputs("students", file="metrics.json"),
    log:
        pack_path("logs/train_students", ".log"),
    benchmark:
        pack_path("benchmarks/train_students", ".tsv")
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
