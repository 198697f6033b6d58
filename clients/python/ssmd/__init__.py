"""Python client of the ssmd daemon (wire protocol: docs/protocol.md)."""
from .protocol import (HEADER_BYTES, MAGIC, VERSION, Header, ProtocolError,  # noqa: F401
                       decode_header, encode_header, format_topic, parse_topic)
