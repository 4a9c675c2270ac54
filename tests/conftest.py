"""Test-session settings: one torch thread per pytest-xdist worker, so that two workers on two cores never fight
over OpenMP threads (measured here: two 2-thread trainings on 2 cores ran 16x slower than one)."""
import os

if os.environ.get('PYTEST_XDIST_WORKER'):
    import torch
    torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: among the slowest tests (minutes on 2 cores); they run with the rest")
