"""``port_is_free``: busy only while something listens; a just-stopped server's port is free again
(its last connections in TIME_WAIT do not stop a restart — the servers bind with SO_REUSEADDR)."""

from __future__ import annotations

import socket

from azurezo_cli.supervisor import port_is_free


def test_listening_port_is_busy_and_time_wait_port_is_free() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert not port_is_free(port)

    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first: its side of the connection goes to TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert port_is_free(port)
