"""Free TCP ports on 127.0.0.1 for tests that start real servers or worker processes.

    from local_net import free_ports  # pytest puts tests/ on sys.path
"""

import socket


def free_ports(count: int) -> list:
    """`count` distinct ports that were free a moment ago (bound together, so never the same one twice)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
