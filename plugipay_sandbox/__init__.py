"""plugipay_sandbox: a stateful, offline stand-in for the Plugipay API. It is not Plugipay.

Standard library only. Run it with ``python -m plugipay_sandbox`` or embed it with
:class:`~plugipay_sandbox.server.SandboxServer`.
"""

from plugipay_sandbox.server import SandboxServer
from plugipay_sandbox.state import SandboxConfig

__all__ = ["SandboxConfig", "SandboxServer"]
__version__ = "0.1.0"
