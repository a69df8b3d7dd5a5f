rule synthesize_target:
    output:
        data="results/targets/{target}/s{seed}.pt",
    log:
        "logs/synthesize_target/{target}/s{seed}.log",
    benchmark:
        "benchmarks/synthesize_target/{target}/s{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=target_spec,
        sizes=split_sizes,
    script:
        "../scripts/synthesize_target.py"
