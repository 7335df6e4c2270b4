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
