rule evaluate_perturbation:
    input:
        target="results/targets/{target}/s{seed}.pt",
        model="results/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}/model.pt",
    output:
        table="results/perturbation/{target}/{structure}/{param}/{activation}/w{width}/s{seed}.tsv",
    log:
        "logs/evaluate_perturbation/{target}/{structure}/{param}/{activation}/w{width}/s{seed}.log",
    benchmark:
        "benchmarks/evaluate_perturbation/{target}/{structure}/{param}/{activation}/w{width}/s{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        perturbation=lookup(dpath="perturbation", within=config),
    script:
        "../scripts/evaluate_perturbation.py"
