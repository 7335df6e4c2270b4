"""The app as configured by .streamlit/config.toml: `streamlit run app.py` with no address given binds
to 127.0.0.1 only, so connections to this machine's other addresses are refused."""
import errno
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import REPO, _free_port

LISTEN = "0A"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on `port`, read from /proc/net/tcp and tcp6."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address_hex, port_hex = local.split(":")
            if state == LISTEN and int(port_hex, 16) == port:
                raw = bytes.fromhex(address_hex)
                # /proc prints each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(family, raw))
    return found


def _other_local_addresses() -> list[str]:
    """Addresses of this machine other than 127.0.0.1: 127.0.0.2 (loopback, but another address) and the
    addresses of the other interfaces."""
    addresses = {"127.0.0.2"}
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
        addresses.update(a for a in out if ":" not in a)
    except OSError:
        pass
    return sorted(addresses - {"127.0.0.1"})


def test_default_server_binds_to_localhost_only(tmp_path):
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc/net")
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.fileWatcherType", "none"],
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "FKS_RUNS_DIR": str(tmp_path / "runs")})
    try:
        deadline = time.time() + 60
        while True:
            assert server.poll() is None and time.time() < deadline, (tmp_path / "streamlit.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.3)
        assert _listening_addresses(port) == {"127.0.0.1"}
        others = _other_local_addresses()
        assert others
        for address in others:
            with socket.socket() as s:
                s.settimeout(5)
                assert s.connect_ex((address, port)) == errno.ECONNREFUSED, address
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
        log.close()


def test_error_details_stay_on_the_server():
    """The repository's config (read by streamlit itself) hides exception details from the browser."""
    out = subprocess.run([sys.executable, "-c", "from streamlit import config; config.get_config_options(); "
                          "print(config.get_option('client.showErrorDetails'), config.get_option('server.address'))"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["none", "127.0.0.1"], out.stderr[-1000:]


def _websocket_status(port: int, host: str, origin: str | None = None) -> int:
    """The HTTP status of a websocket handshake on the app's stream with this Host (and Origin) header."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        origin_line = f"Origin: {origin}\r\n" if origin else ""
        s.sendall((f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: streamlit\r\n{origin_line}\r\n").encode())
        head = s.recv(4096).decode("latin-1")
    return int(head.split()[1])


@pytest.mark.parametrize("extra", [[], ["--server.allowedHosts", "localhost", "--server.allowedHosts", "fks.lan"]])
def test_only_the_allowed_host_names_open_the_app_websocket(tmp_path, extra):
    """DNS rebinding: a page on attacker.example that resolves to 127.0.0.1 gets no websocket (the app's control
    channel); the names the server is reached by on this machine (and those the user adds) still do."""
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.fileWatcherType", "none", *extra],
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "FKS_RUNS_DIR": str(tmp_path / "runs")})
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.3)
        for host, origin in [("attacker.example", "http://attacker.example"), (f"attacker.example:{port}", None),
                             (f"127.0.0.1.attacker.example:{port}", f"http://127.0.0.1.attacker.example:{port}")]:
            assert _websocket_status(port, host, origin) == 403, host
        allowed = [f"localhost:{port}"] + ([f"fks.lan:{port}"] if extra else [f"127.0.0.1:{port}", f"[::1]:{port}"])
        for host in allowed:
            assert _websocket_status(port, host, f"http://{host}") == 101, host
        if extra:  # the names given replace the config file's list
            assert _websocket_status(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}") == 403
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
        log.close()
