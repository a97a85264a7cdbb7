"""What the GPU backends share: a CUDA check and a runner that moves a tokenized batch to the GPU and back.

The host-to-device copy of the ids and the copy of the logits back are part of the timed call, as they
are for a server that receives text on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch


def cuda_missing() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA device (torch.cuda.is_available() is False)"


class CudaRunner:
    def __init__(self, forward, names: list[str] | None = None) -> None:
        self.forward, self.names = forward, names

    @torch.inference_mode()
    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        batch = {n: torch.from_numpy(a).to("cuda", non_blocking=True) for n, a in inputs.items()}
        out = self.forward(*[batch[n] for n in self.names]) if self.names else self.forward(**batch)
        logits = out if isinstance(out, torch.Tensor) else out.logits
        return logits.float().cpu().numpy()  # (B, K); .cpu() waits for the GPU
