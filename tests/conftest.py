"""Test-wide settings: one torch thread (PPO runs ~35x slower with default threading on
2-core machines)."""

import torch

torch.set_num_threads(1)
