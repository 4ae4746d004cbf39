"""What auto's gain model needs to know of a torch optimizer
(src/tuner/README.md): whether its step divides by the root of a second
moment ("adam": Adam, AdamW, Adamax, NAdam, RAdam, RMSprop, Adagrad,
Adadelta) or is linear in the gradient ("sgd"), and its momentum (SGD's
momentum, Adam's beta1). SQZ_OPTIMIZER and SQZ_MOMENTUM, when set, win."""
import os

import torch

_ADAPTIVE = tuple(getattr(torch.optim, n) for n in ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop",
                                                       "Adagrad", "Adadelta", "SparseAdam")
                  if hasattr(torch.optim, n))


def optimizer_settings(optimizer):
    """(kind, momentum) for `optimizer`, or None for a kind this does not
    know (the library's defaults, or SQZ_OPTIMIZER / SQZ_MOMENTUM, apply)."""
    groups = getattr(optimizer, "param_groups", None) or [{}]
    group = groups[0]
    if isinstance(optimizer, torch.optim.SGD):
        kind, momentum = "sgd", float(group.get("momentum", 0.0) or 0.0)
    elif isinstance(optimizer, _ADAPTIVE):
        betas = group.get("betas")
        momentum = float(betas[0]) if betas else float(group.get("momentum", 0.0) or 0.0)
        kind = "adam"
    else:
        return None
    env = os.environ
    if env.get("SQZ_OPTIMIZER"):
        kind = env["SQZ_OPTIMIZER"]
    if env.get("SQZ_MOMENTUM"):
        momentum = float(env["SQZ_MOMENTUM"])
    return kind, momentum


def apply(comm, optimizer):
    """Tells `comm` what `optimizer` is; returns the (kind, momentum) set, or
    None when nothing was (unknown optimizer, or a libsqz without it)."""
    settings = optimizer_settings(optimizer)
    if settings is None or not comm.set_optimizer(*settings):
        return None
    return settings
