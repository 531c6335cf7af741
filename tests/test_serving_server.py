"""How ``mlops serve`` listens: a listener per worker in one SO_REUSEPORT group (the kernel
spreads connections over them), and a clear error when the address is taken."""

import pickle
import selectors
import socket
import sys

import pytest

from mlops.errors import ConfigError
from mlops.serving import server
from tests.serving_support import free_port

linux_only = pytest.mark.skipif(
    not server.balanced(2, 1), reason="SO_REUSEPORT groups are Linux-only"
)


@linux_only
def test_each_worker_gets_its_own_listener_and_connections_reach_all_of_them():
    port = free_port()
    # What each spawned worker unpickles from uvicorn's socket list.
    stand_in = server.WorkerListener("127.0.0.1", port, 64)
    workers = [pickle.loads(pickle.dumps(stand_in)) for _ in range(2)]
    clients = []
    try:
        assert all(w.getsockname() == ("127.0.0.1", port) for w in workers)
        assert workers[0].fileno() != workers[1].fileno()
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        accepted = [0, 0]
        with selectors.DefaultSelector() as sel:
            for i, w in enumerate(workers):
                w.setblocking(False)
                sel.register(w, selectors.EVENT_READ, i)
            while sum(accepted) < len(clients):
                for key, _ in sel.select(timeout=5):
                    conn, _ = key.fileobj.accept()
                    conn.close()
                    accepted[key.data] += 1
        # Hashed by the clients' ports: all 64 on one listener would be a 2**-63 chance.
        assert min(accepted) > 0, accepted
    finally:
        for s in clients + workers:
            s.close()


def test_balanced_only_with_several_workers_on_a_fixed_port():
    assert not server.balanced(1, 8000)
    assert not server.balanced(4, 0)  # each worker would get a port of its own
    assert server.balanced(4, 8000) == (sys.platform == "linux")


@pytest.mark.parametrize("workers", [1, 2])
def test_an_address_in_use_is_refused_before_any_worker_starts(workers):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}") as err:
            server.run("127.0.0.1", port, workers)
        assert "--port" in str(err.value)
    finally:
        taken.close()


@linux_only
def test_a_second_server_cannot_join_a_running_servers_group():
    port = free_port()
    running = server.listener("127.0.0.1", port, 8)  # a worker of a running server
    try:
        with pytest.raises(ConfigError, match="cannot listen"):
            server.run("127.0.0.1", port, 2)
    finally:
        running.close()
