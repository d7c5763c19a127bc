"""Number formats on the GPU: which mixed precision, autocast for inference, TF32.

One rule everywhere: bf16 only where the GPU computes in it natively (compute capability
8.0 and newer: A100, H100, RTX 30xx+). T4 and V100 *emulate* bf16, slowly, though
``torch.cuda.is_bf16_supported()`` says yes; they get fp16 (with loss scaling when
training). On the CPU everything stays fp32.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch


def native_bf16(device: torch.device | int | None = None) -> bool:
    """Whether the CUDA device computes in bf16 natively (compute capability >= 8.0)."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8


def autocast_for(device: torch.device):
    """Autocast for inference on ``device``: bf16 where native, else fp16; off on the CPU."""
    if device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if native_bf16(device) else torch.float16)


@contextmanager
def tf32_matmuls(device: torch.device):
    """TF32 matrix products (Ampere and newer) inside the block only; the user's setting
    is restored afterwards, and importing the course changes nothing."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
