"""Free TCP ports for tests and benchmarks that start servers on fixed ports."""

from __future__ import annotations

import random
import socket


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports below the kernel's ephemeral range (32768+): a port picked by
    binding to 0 is free now, but an outgoing connection (nginx to an upstream, a load
    generator) may take it before the server that was meant to bind it does."""
    ports: list[int] = []
    while len(ports) < n:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports
