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
        "../scripts/estimate_target_memory.py"


for _group, _families in FAMILY_GROUPS.items():

    rule:
        name:
            f"estimate_student_memory{RULE_SUFFIX[_group]}"
        input:
            models=pack_files("students", file="model.pt"),
        output:
            memory=pack_outputs("memory/students", _group, ".tsv"),
            fits=pack_outputs("memory/students", _group, "_fit.tsv"),
        log:
            pack_path("logs/estimate_student_memory", ".log"),
        benchmark:
            pack_path("benchmarks/estimate_student_memory", ".tsv")
        wildcard_constraints:
            family="|".join(_families),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            members=members,
            memory=lookup(dpath="memory", within=config),
        script:
            "../scripts/estimate_student_memory.py"
