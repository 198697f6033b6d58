"""Python client of the ssmd daemon (wire protocol: docs/protocol.md).

Subscriber (data plane), Pusher (ingest), Control (control socket); the
codec is in ssmd.protocol.  The socket classes need pyzmq and numpy."""
from .protocol import (HEADER_BYTES, MAGIC, VERSION, Header, ProtocolError,  # noqa: F401
                       decode_header, encode_header, format_topic, parse_topic)

try:
    from ._net import DaemonUnreachable  # noqa: F401
    from .control import Control, ControlError  # noqa: F401
    from .pusher import DaemonError, Pusher  # noqa: F401
    from .subscriber import Subscriber  # noqa: F401
except ImportError:  # pyzmq or numpy missing: the codec alone still works
    pass
