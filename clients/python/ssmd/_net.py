# SPDX-License-Identifier: MIT
"""Connecting with a deadline (shared by Subscriber, Pusher and Control).

ZeroMQ connects in the background and never fails for an absent peer; a
socket monitor tells when the connection is really made, so a client can say
"no daemon" after a timeout instead of waiting forever."""
import time

import zmq
from zmq.utils.monitor import recv_monitor_message


def endpoint_from_env(env_name, default):
    """The endpoint a client uses when none is given: the environment
    variable env_name (SSMD_PUB, SSMD_INGEST, SSMD_CONTROL, as the C clients)
    when set and not empty, else default (the daemon's)."""
    return endpoint_source(None, env_name, default)[0]


def endpoint_source(endpoint, env_name, default):
    """(the endpoint to use, the environment variable it came from or None):
    endpoint when given, else $env_name when set and not empty, else default.
    connect() names the variable in its errors."""
    import os
    if endpoint:
        return endpoint, None
    if os.environ.get(env_name):
        return os.environ[env_name], env_name
    return default, None


class DaemonUnreachable(TimeoutError):
    """No connection to the daemon's socket within the timeout."""


def connect(sock, endpoint, timeout, env_name=None):
    """Connects sock to endpoint and waits up to timeout seconds (None: do not
    wait) for the connection.  Raises DaemonUnreachable, or ValueError for a
    malformed endpoint; env_name: the environment variable the endpoint came
    from (endpoint_source), named in both messages."""
    mon = sock.get_monitor_socket(zmq.EVENT_CONNECTED) if timeout is not None else None
    try:
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            if env_name:
                raise ValueError(f'{env_name}="{endpoint}": invalid endpoint ({e}; expected '
                                 "tcp://HOST:PORT, ipc://PATH or inproc://NAME)") from None
            raise ValueError(f"bad endpoint {endpoint!r}: {e}") from None
        if mon is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DaemonUnreachable(
                    f"no connection to {endpoint}{f' (from ${env_name})' if env_name else ''} after "
                    f"{timeout:.1f} s (is ssmd running?)")
            if mon.poll(int(left * 1000) + 1):
                if recv_monitor_message(mon)["event"] == zmq.EVENT_CONNECTED:
                    return
    finally:
        if mon is not None:
            sock.disable_monitor()
            mon.close(linger=0)


class SocketClient:
    """Base of Control, Pusher and Subscriber: owns self._sock; close() and
    the context-manager protocol close it without lingering."""

    def close(self):
        self._sock.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
