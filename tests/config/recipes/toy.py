"""A tiny recipe for configuration and CLI tests: nothing here needs a model or data."""
import torch
from omegaconf import OmegaConf

from detrun.config import L

model = L(torch.nn.Linear)(in_features=4, out_features="${.in_features}", bias=True)
optimizer = L(torch.optim.SGD)(lr=0.1, momentum=0.9)
trainer = OmegaConf.create({"max_iter": 10, "gpus": 0, "seed": 1})
