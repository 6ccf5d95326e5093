import httpx
import pytest

from tunesmith_server import Server, server_env


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    """A server with an in-process worker; aliases such as text-bison-001 are the tiny model."""
    home = tmp_path_factory.mktemp("server-home")
    s = Server(home, server_env(home, str(tiny_model_dir)))
    yield s
    s.stop()


@pytest.fixture()
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c
