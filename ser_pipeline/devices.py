"""Device choice and mixed precision: CUDA when present, float16 autocast only there."""

from __future__ import annotations

import contextlib

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available (use auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def autocast_for(device: torch.device):
    """float16 autocast on CUDA; plain float32 elsewhere (CPU half precision is slower here)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def matmul_autocast_for(device: torch.device):
    """For networks made of matrix products (the Whisper encoder): float16 autocast on CUDA,
    bfloat16 on a CPU with bfloat16 dot products, AMX tiles or AVX512-BF16 (twice as fast with
    AMX; 1.86x on an AMD EPYC with AVX512-BF16, 500 development clips. The Whisper head's
    predictions: on 446 development clips with AMX the same, probabilities within 0.013; on the
    500 with AVX512-BF16 the same read alone, 2 of 500 other read against their speaker,
    probabilities within 0.021), plain float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu" and cpu_has_bfloat16_dot_products():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_has_bfloat16_dot_products() -> bool:
    return torch._C._cpu._is_amx_tile_supported() or torch._C._cpu._is_avx512_bf16_supported()


@contextlib.contextmanager
def cpu_threads_beside_decoder(device: torch.device):
    """While a decoding thread runs, torch on the CPU keeps to one fewer intra-op thread: its
    threads otherwise wait on each other whenever one shares a core with the decoder (measured
    on 2 cores: decode + log-mel of an hour 8.4 s with 2 torch threads, 7.2 s with 1). Yields a
    context manager giving torch its threads back, for work done while the decoder is held."""
    before = torch.get_num_threads()
    if device.type == "cpu" and before > 1:
        torch.set_num_threads(before - 1)

    @contextlib.contextmanager
    def every_thread():
        now = torch.get_num_threads()
        torch.set_num_threads(before)
        try:
            yield
        finally:
            torch.set_num_threads(now)

    try:
        yield every_thread
    finally:
        torch.set_num_threads(before)
