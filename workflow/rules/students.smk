rule train_student:
    input:
        target="results/targets/{target}/s{seed}.pt",
        previous=previous_width_metrics,
    output:
        model="results/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}/model.pt",
        history="results/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}/history.tsv",
        metrics="results/students/{target}/{structure}/{param}/{activation}/w{width}/s{seed}/metrics.json",
    log:
        "logs/train_student/{target}/{structure}/{param}/{activation}/w{width}/s{seed}.log",
    benchmark:
        "benchmarks/train_student/{target}/{structure}/{param}/{activation}/w{width}/s{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=60,
    params:
        student=student_config,
        train=train_settings,
        monotone_factor=monotone_factor,
    script:
        "../scripts/train_student.py"
