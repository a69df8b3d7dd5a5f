rule estimate_target_memory:
    input:
        target=f"results/targets/{{target}}/s{SEEDS[0]}.pt",
    output:
        memory="results/memory/targets/{target}.tsv",
        fit="results/memory/targets/{target}_fit.tsv",
    log:
        "logs/estimate_target_memory/{target}.log",
    benchmark:
        "benchmarks/estimate_target_memory/{target}.tsv"
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
            models=pack_files("students", file="model.pt", by=MEMORY_PACK_BY),
        output:
            memory=pack_outputs("memory/students", _group, ".tsv", by=MEMORY_PACK_BY),
            fits=pack_outputs("memory/students", _group, "_fit.tsv", by=MEMORY_PACK_BY),
        log:
            pack_path("logs/estimate_student_memory", ".log", by=MEMORY_PACK_BY),
        benchmark:
            pack_path("benchmarks/estimate_student_memory", ".tsv", by=MEMORY_PACK_BY)
        wildcard_constraints:
            family="|".join(_families),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            members=memory_members,
            memory=lookup(dpath="memory", within=config),
        script:
            "../scripts/estimate_student_memory.py"
