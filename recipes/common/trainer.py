"""Trainer settings of a training recipe (read by `detrun.engine.train.run_train`).

CPU-friendly defaults: one process on CPU, full precision. Override on the command line,
e.g. ``trainer.gpus=8 trainer.amp=bf16 trainer.max_iter=90000``.
"""
from omegaconf import OmegaConf

trainer = OmegaConf.create(
    {
        # Length and launch.
        "max_iter": 1000,  # optimizer steps; the lr schedule's fractions refer to it
        "gpus": 0,  # GPUs (= processes, NCCL) per machine; 0 trains on CPU
        "num_processes": 1,  # CPU only: processes on this machine (gloo DDP when > 1)
        "num_machines": 1,
        "machine_rank": 0,  # this machine's index, 0 .. num_machines-1
        "dist_url": "auto",  # tcp://HOST:PORT of machine 0 when num_machines > 1
        "find_unused_parameters": False,  # DDP; only for models that skip parameters in some steps
        # Numerics.
        # off | auto (bf16 where the device computes it natively: AVX-512 BF16/AMX CPUs, bf16 GPUs;
        # full precision elsewhere) | bf16 (CUDA and CPU autocast) | fp16 (CUDA, with a GradScaler)
        "amp": "off",
        # Precision of task=eval, task=predict, the evaluation after training and Predictor:
        # off | auto | bf16 | fp16 (fp16 on CUDA only). bf16 on a CPU without native bf16 is many
        # times slower than fp32 (benchmarks/README.md, model).
        "inference_amp": "${.amp}",
        # torch.compile of the backbone and heads (detrun.export.compile) for training and for
        # task=eval / task=predict / Predictor: false | true (inductor) | a backend name (aot_eager...)
        "compile": False,
        "inference_compile": False,
        "grad_accum": 1,  # micro-batches per optimizer step: effective batch = grad_accum x total batch
        "clip_grad_norm": 0.0,  # max global L2 norm of the gradients; 0 disables clipping
        # Weight decay of normalisation layers and of other biases (null: the optimizer's), for
        # optimizers without a `params` node (with one, e.g. AdamW, its own keys decide).
        "weight_decay_norm": 0.0,
        "weight_decay_bias": 0.0,
        "ema": {"enabled": False, "decay": 0.9998, "warmup_iters": 2000},  # EMA weights are evaluated and saved
        "seed": 0,  # weights are seeded with it, rank r's data/dropout with seed + r
        # Checkpoints, evaluation, logging.
        "checkpoint_period": 500,  # steps between checkpoints (and one after the last step); 0: none
        "keep_checkpoints": 3,  # newest checkpoints kept in run_dir/checkpoints; 0 keeps all
        "resume": False,  # true: continue from this run dir's last checkpoint; or a checkpoint / run dir path
        "eval_period": 0,  # steps between evaluations (the final one always runs when there is an evaluator)
        "log_period": 20,  # steps between metrics.jsonl lines (means over the period)
        "hooks": [],  # extra hooks, e.g. [L(MyHook)(period=100)] (see detrun.engine.hooks.Hook)
    }
)
