# Figures read the tables only: seconds each, run on the submitting host (no cluster
# job of their own), in the torch-free environment.
localrules:
    figures,
    plot_target_memory,
    plot_perturbation,
    plot_stability_radius,
    plot_student_memory,
    plot_training,
    plot_sensitivity,


rule plot_target_memory:
    input:
        memory="results/tables/memory.tsv",
    output:
        png=report(
            "results/figures/target_memory.png",
            caption="../report/target_memory.rst",
            category="Memory functions",
        ),
        pdf="results/figures/target_memory.pdf",
    log:
        "logs/plot/target_memory.log",
    benchmark:
        "benchmarks/plot_target_memory.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_target_memory.py"


rule plot_perturbation:
    input:
        perturbation="results/tables/perturbation.tsv",
        crossings="results/tables/crossings.tsv",
    output:
        png=report(
            "results/figures/perturbation_{target}.png",
            caption="../report/perturbation.rst",
            category="Perturbation stability",
            labels={"target": "{target}"},
        ),
        pdf="results/figures/perturbation_{target}.pdf",
    log:
        "logs/plot/perturbation_{target}.log",
    benchmark:
        "benchmarks/plot_perturbation/{target}.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_perturbation.py"


rule plot_stability_radius:
    input:
        radius="results/tables/stability_radius.tsv",
        crossings="results/tables/crossings.tsv",
        perturbation="results/tables/perturbation.tsv",
    output:
        png=report(
            "results/figures/stability_radius.png",
            caption="../report/stability_radius.rst",
            category="Perturbation stability",
            labels={"target": "all"},
        ),
        pdf="results/figures/stability_radius.pdf",
    log:
        "logs/plot/stability_radius.log",
    benchmark:
        "benchmarks/plot_stability_radius.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_stability_radius.py"


rule plot_student_memory:
    input:
        memory="results/tables/memory.tsv",
    output:
        png=report(
            "results/figures/student_memory.png",
            caption="../report/student_memory.rst",
            category="Memory functions",
        ),
        pdf="results/figures/student_memory.pdf",
    log:
        "logs/plot/student_memory.log",
    benchmark:
        "benchmarks/plot_student_memory.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_student_memory.py"


rule plot_training:
    input:
        history="results/tables/history.tsv",
        training="results/tables/training.tsv",
    output:
        png=report(
            "results/figures/training.png",
            caption="../report/training.rst",
            category="Training",
        ),
        pdf="results/figures/training.pdf",
    log:
        "logs/plot/training.log",
    benchmark:
        "benchmarks/plot_training.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_training.py"


rule figures:
    input:
        figure_files(),


rule plot_sensitivity:
    input:
        slopes="results/tables/slopes.tsv",
    output:
        png=report(
            "results/figures/sensitivity.png",
            caption="../report/sensitivity.rst",
            category="Perturbation stability",
            labels={"target": "slopes"},
        ),
        pdf="results/figures/sensitivity.pdf",
    log:
        "logs/plot/sensitivity.log",
    benchmark:
        "benchmarks/plot_sensitivity.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_sensitivity.py"
