rule estimate_target_memory:
    input:
        target=f"results/targets/{{target}}/s{SEEDS[0]}.pt",
    output:
        memory="results/memory/targets/{target}.tsv",
        fit="results/memory/targets/{target}_fit.tsv",
    log:
        "logs/estimate_target_memory/{target}.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        memory=lookup(dpath="memory", within=config),
    script:
        "../scripts/estimate_memory.py"


rule estimate_student_memory:
    input:
        model="results/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}/model.pt",
    output:
        memory="results/memory/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}.tsv",
        fit="results/memory/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}_fit.tsv",
    log:
        "logs/estimate_student_memory/{target}/{structure}/{param}/{activation}/w{width}/s{seed}.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        memory=lookup(dpath="memory", within=config),
    script:
        "../scripts/estimate_memory.py"
