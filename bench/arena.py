"""Peak resident memory of ONNX Runtime sessions on the service's three graphs (forward,
head-gradient, gradient) under different allocator settings, in-process, for one seeded sequence of
batch sizes: what the per-session arenas cost, and what sharing one arena would save.

    bench/.venv/bin/python bench/arena.py GRAPHS MODE [BATCHES]

GRAPHS holds forward.onnx, head.onnx and gradient.onnx (`explaind augment MODEL --graph forward|head|
gradient -o ...`, as bench/run.sh makes them). MODE is one of: default (an arena per session),
noarena, env (one arena registered on the environment, shared by the sessions), env-same (the same,
growing by what is asked), env-nopattern, env-same-nopattern (memory patterns off). Prints the final
and peak RSS in MiB and the seconds the sequence took.
"""
import random
import sys
import time

import numpy as np
import onnxruntime as ort


def status(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) // 1024


def main():
    graphs, mode = sys.argv[1], sys.argv[2]
    batches = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    if mode == "noarena":
        options.enable_cpu_mem_arena = False
    if mode.startswith("env"):
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, 1 if "same" in mode else -1, -1, -1))
        options.add_session_config_entry("session.use_env_allocators", "1")
    if "nopattern" in mode:
        options.enable_mem_pattern = False
    sessions = [
        ort.InferenceSession(f"{graphs}/{g}.onnx", options, providers=["CPUExecutionProvider"])
        for g in ("forward", "head", "gradient")
    ]
    loaded = status("VmRSS")
    random.seed(0)
    sequence = [random.randint(1, 16) for _ in range(batches)]
    started = time.perf_counter()
    for rows in sequence:
        for session in sessions:
            names = [i.name for i in session.get_inputs()]
            feeds = {names[0]: np.random.rand(rows, 3, 224, 224).astype(np.float32)}
            feeds.update({name: np.zeros(rows, dtype=np.int64) for name in names[1:]})
            session.run([o.name for o in session.get_outputs()][:2], feeds)
    took = time.perf_counter() - started
    print(f"{mode}: loaded {loaded} MiB, final {status('VmRSS')} MiB, peak {status('VmHWM')} MiB, {took:.1f} s")


if __name__ == "__main__":
    main()
