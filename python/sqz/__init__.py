"""sqz: compressed collectives. `sqz.torch` is the Horovod-compatible
PyTorch API, `sqz.torch.ddp` a DDP communication hook, `python -m sqz.run`
a local launcher."""
from ._lib import SqzError, load as load_library  # noqa: F401
from .comm import Communicator  # noqa: F401

__version__ = "0.1.0"
