# One job per target writes the splits of every seed: a job is mostly its start-up.
rule synthesize_target:
    output:
        data=expand("results/targets/{{target}}/s{seed}.pt", seed=SEEDS),
    log:
        "logs/synthesize_target/{target}.log",
    benchmark:
        "benchmarks/synthesize_target/{target}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=target_spec,
        sizes=split_sizes,
        seeds=SEEDS,
    script:
        "../scripts/synthesize_target.py"
