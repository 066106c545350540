import pytest
import torch

from engine_toy import LAUNCHER_ENV


@pytest.fixture(autouse=True)
def single_process_env(monkeypatch):
    for key in LAUNCHER_ENV:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models run slower with several threads on a busy 2-core machine (thread hand-offs).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

