"""Small torch helpers shared by normalize, models and nets (numpy stays the public type)."""
from __future__ import annotations

import numpy as np

__all__ = ["default_device", "seed_everything", "to_tensor", "to_numpy_images"]


def default_device(device=None):
    """``device`` as a torch.device; ``None`` picks CUDA when present, else the CPU."""
    import torch
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int | None) -> "torch.Generator":
    """Seed torch (CPU and CUDA) and return a CPU ``torch.Generator`` seeded the same."""
    import torch
    g = torch.Generator()
    if seed is not None:
        torch.manual_seed(int(seed))
        g.manual_seed(int(seed))
    else:
        g.seed()
    return g


def to_tensor(images: np.ndarray, device=None, channels_last: bool = False) -> "torch.Tensor":
    """float32 (N, H, W, 3) numpy → (N, 3, H, W) tensor on ``device``.

    ``channels_last=True`` keeps the numpy layout in memory (``torch.channels_last``,
    no copy on the CPU): the layout in which oneDNN runs convolutions fastest.
    """
    import torch
    if channels_last:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    else:
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, -1, 1), dtype=np.float32))
    return x.to(default_device(device))


def to_numpy_images(x) -> np.ndarray:
    """(N, 3, H, W) tensor → float32 (N, H, W, 3) numpy."""
    return np.moveaxis(x.detach().float().cpu().numpy(), 1, -1).astype(np.float32)
