# Cheap aggregations of the per-student tables and the claims: run on the submitting
# host (no cluster job of their own), in the torch-free environment.
localrules:
    aggregate_training,
    aggregate_perturbation,
    aggregate_memory,
    check_claims,


rule aggregate_training:
    input:
        metrics=student_files(student_path("students", file="metrics.json")),
        histories=student_files(student_path("students", file="history.tsv")),
    output:
        training="results/tables/training.tsv",
        history="results/tables/history.tsv",
    log:
        "logs/aggregate_training.log",
    benchmark:
        "benchmarks/aggregate_training.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        students=student_grid(),
    script:
        "../scripts/aggregate_training.py"


rule aggregate_perturbation:
    input:
        tables=student_files(student_path("perturbation", ".tsv")),
    output:
        perturbation="results/tables/perturbation.tsv",
        radius="results/tables/stability_radius.tsv",
        crossings="results/tables/crossings.tsv",
    log:
        "logs/aggregate_perturbation.log",
    benchmark:
        "benchmarks/aggregate_perturbation.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/aggregate_perturbation.py"


rule aggregate_memory:
    input:
        memory=expand("results/memory/targets/{target}.tsv", target=TARGETS)
        + student_files(student_path("memory/students", ".tsv")),
        fits=expand("results/memory/targets/{target}_fit.tsv", target=TARGETS)
        + student_files(student_path("memory/students", "_fit.tsv")),
    output:
        memory="results/tables/memory.tsv",
        fit="results/tables/memory_fit.tsv",
    log:
        "logs/aggregate_memory.log",
    benchmark:
        "benchmarks/aggregate_memory.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/aggregate_memory.py"


rule check_claims:
    input:
        training="results/tables/training.tsv",
        radius="results/tables/stability_radius.tsv",
        crossings="results/tables/crossings.tsv",
        perturbation="results/tables/perturbation.tsv",
        memory_fit="results/tables/memory_fit.tsv",
    output:
        claims=report(
            "results/tables/claims.tsv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        slopes="results/tables/slopes.tsv",
        families="results/tables/families.tsv",
        halves="results/tables/seed_halves.tsv",
    log:
        "logs/check_claims.log",
    benchmark:
        "benchmarks/check_claims.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        targets=lookup(dpath="targets", within=config),
        thresholds=lookup(dpath="claims", within=config),
        rate_floor=memory_rate_floor(),
    script:
        "../scripts/check_claims.py"
