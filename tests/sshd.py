"""A real OpenSSH server for tests: Debian's ``/usr/sbin/sshd`` on a free loopback port.

Each ``SshHost`` is one ``sshd -D -e`` process with its own throwaway host key, its own
``authorized_keys`` holding the test's throwaway user key, and nothing else: no PAM, no
password logins (root may log in with the key only: ``PermitRootLogin prohibit-password``),
``StrictModes no`` because the files live in pytest's temp dir. Two instances are two "hosts".
Nothing on the machine changes except, when running as root, the privilege separation
directory ``/run/sshd`` that sshd requires.

Use the fixtures from a test module or conftest::

    from tests.sshd import ssh_user_key, sshd_hosts  # noqa: F401  (pytest fixtures)

or start servers yourself with ``make_user_key`` and ``running_sshd``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
MAX_LISTEN_ADDRESSES = 16


@dataclass(frozen=True)
class SshUserKey:
    """A throwaway ed25519 user key: the private key file and text, the public key line."""

    path: Path
    private_text: str
    public_line: str


@dataclass(frozen=True)
class SshHost:
    """One running sshd.

    ``addresses`` are the loopback addresses it listens on (the first is the usual one),
    ``port`` its port, ``user`` the login user (this process's user), ``host_key`` the public
    host key line (``ssh-ed25519 AAAA...``), ``fingerprint`` its OpenSSH SHA256 fingerprint
    (``SHA256:...``), ``log`` the file sshd writes its log to.
    """

    addresses: tuple[str, ...]
    port: int
    user: str
    host_key: str
    fingerprint: str
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        """The first address, e.g. ``127.0.0.1``."""
        return self.addresses[0]

    @property
    def target(self) -> str:
        """``address:port``, as an ssh step's ``hosts`` entry names this host."""
        return f"{self.address}:{self.port}"

    def known_hosts(self) -> str:
        """known_hosts lines (OpenSSH format) for every address of this host."""
        return "".join(f"[{addr}]:{self.port} {self.host_key}\n" for addr in self.addresses)

    def connection_values(self, key: SshUserKey, **extra: str) -> dict[str, str]:
        """The values of an ``ssh`` connection that logs in here with ``key``."""
        return {
            "host": self.address,
            "port": str(self.port),
            "user": self.user,
            "private_key": key.private_text,
            "known_hosts": self.known_hosts(),
            **extra,
        }


def make_user_key(directory: Path) -> SshUserKey:
    """Generate an ed25519 key pair without a passphrase in ``directory`` with ssh-keygen."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "id_ed25519"
    _keygen(path, "opsflow-test-user")
    return SshUserKey(
        path=path,
        private_text=path.read_text(),
        public_line=path.with_suffix(".pub").read_text().strip(),
    )


@contextmanager
def running_sshd(
    directory: Path, key: SshUserKey, addresses: Sequence[str] = ("127.0.0.1",)
) -> Iterator[SshHost]:
    """Start sshd in ``directory`` (created) accepting ``key``; stop it on exit.

    Raises ``pytest.fail`` with sshd's log if it does not start listening within 15 s. One sshd
    listens on at most 16 addresses (OpenSSH's ``MAX_LISTEN_SOCKS``): start several for more.
    """
    if len(addresses) > MAX_LISTEN_ADDRESSES:
        raise ValueError(f"one sshd listens on at most {MAX_LISTEN_ADDRESSES} addresses")
    if not Path(SSHD).exists():
        pytest.fail(f"{SSHD} is missing: apt-get install openssh-server (make packages)")
    directory.mkdir(parents=True, exist_ok=True)
    host_key_path = directory / "ssh_host_ed25519_key"
    _keygen(host_key_path, "opsflow-test-host")
    host_key = " ".join(host_key_path.with_suffix(".pub").read_text().split()[:2])
    (directory / "authorized_keys").write_text(key.public_line + "\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        "".join(f"ListenAddress {address}\n" for address in addresses) + f"Port {port}\n"
        f"HostKey {host_key_path}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "Subsystem sftp internal-sftp\n"
        "MaxSessions 100\n"
        "MaxStartups 200:30:400\n"
        "LogLevel INFO\n"
    )
    log = directory / "sshd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        _wait_listening(process, log, port, addresses)
        yield SshHost(
            addresses=tuple(addresses),
            port=port,
            user=getpass.getuser(),
            host_key=host_key,
            fingerprint=_fingerprint(host_key_path.with_suffix(".pub")),
            log=log,
            process=process,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _fingerprint(public_key: Path) -> str:
    out = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(public_key)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


def _wait_listening(
    process: subprocess.Popen[bytes], log: Path, port: int, addresses: Sequence[str]
) -> None:
    """Until sshd logs ``Server listening on ADDRESS port N`` for every address (it binds them
    one by one); its log is the readiness event."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if all(f"listening on {address} port {port}." in text for address in addresses):
            return
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.02)
    pytest.fail(f"sshd did not listen on port {port} within 15s:\n{log.read_text()}")


@pytest.fixture
def ssh_user_key(tmp_path: Path) -> SshUserKey:
    """A throwaway user key that every ``sshd_hosts`` host accepts."""
    return make_user_key(tmp_path / "user-key")


@pytest.fixture
def sshd_hosts(tmp_path: Path, ssh_user_key: SshUserKey) -> Iterator[list[SshHost]]:
    """Two running sshd "hosts" on loopback, each with its own host key."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(running_sshd(tmp_path / f"sshd-{n}", ssh_user_key)) for n in (1, 2)
        ]
