"""The database briefly unavailable: PostgreSQL behind a TCP proxy this test cuts and restores.

Restarting the shared PostgreSQL server would disturb other test runs, so the server under
test reaches its own database through a proxy on 127.0.0.1; cutting the proxy drops every
connection and refuses new ones, as a restart does.
"""

from __future__ import annotations

import socket
import threading

import httpx

from tunesmith_server import Server, free_port, server_env

BODY = {
    "baseModel": "models/text-bison-001",
    "tuningTask": {"trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}}},
}


class Proxy:
    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.start()

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.listener.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.conns.clear()


def test_database_briefly_unavailable(tmp_path, tiny_model_dir, postgres_database):
    proxy = Proxy(("127.0.0.1", postgres_database.port or 5432))
    url = postgres_database.set(drivername="postgresql+psycopg", host="127.0.0.1", port=proxy.port)
    env = server_env(
        tmp_path, str(tiny_model_dir), TUNESMITH_DATABASE_URL=url.render_as_string(False)
    )
    server = Server(tmp_path, env, "--no-worker")
    try:
        with httpx.Client(base_url=server.url + "/v1beta", timeout=30) as c:
            r = c.post("/tunedModels", params={"tunedModelId": "kept"}, json=BODY)
            assert r.status_code == 200, r.text
            proxy.cut()
            for call in (
                lambda: c.get("/tunedModels"),
                lambda: c.get("/tunedModels/kept"),
                lambda: c.post("/tunedModels", params={"tunedModelId": "lost"}, json=BODY),
            ):
                r = call()
                assert r.status_code == 503, r.text
                err = r.json()["error"]
                assert err["status"] == "UNAVAILABLE" and "database" in err["message"]
                assert r.headers["retry-after"]
            proxy.start()  # back
            assert c.get("/tunedModels/kept").status_code == 200
            names = [m["name"] for m in c.get("/tunedModels").json()["tunedModels"]]
            assert names == ["tunedModels/kept"]  # acknowledged kept, refused not half-made
            r = c.post("/tunedModels", params={"tunedModelId": "after"}, json=BODY)
            assert r.status_code == 200, r.text
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        proxy.cut()
