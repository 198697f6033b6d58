# SPDX-License-Identifier: MIT
"""Python client of the ssmd daemon (wire protocol: docs/protocol.md).

Subscriber (data plane), Pusher (ingest), Control (control socket); the
codec is in ssmd.protocol.  Cluster mode (docs/cluster.md): ClusterPusher
finds a stream's owner through etcd (Directory) and follows it across a
failover.  The socket classes need pyzmq and numpy.
__version__ is the ssmd project version (the top-level meson.build).

Install: pip install ./clients/python (extras: [spectrogram] for the
examples' matplotlib)."""
try:
    from ._version import __version__  # written by setup.py when the package is built
except ImportError:  # running from a checkout: the same source, read directly
    from ._srcversion import meson_project_version as _mpv
    __version__ = _mpv()
    del _mpv

from .protocol import (HEADER_BYTES, MAGIC, VERSION, Header, ProtocolError,  # noqa: F401
                       decode_header, encode_header, format_topic, parse_topic)

try:
    from ._net import DaemonUnreachable  # noqa: F401
    from .control import Control, ControlError  # noqa: F401
    from .pusher import DaemonError, Pusher  # noqa: F401
    from .subscriber import Subscriber  # noqa: F401
    from .cluster import ClusterError, ClusterPusher, ClusterSubscriber, Directory  # noqa: F401
except ImportError:  # pyzmq or numpy missing: the codec alone still works
    pass
