"""Issue 8, item 7: secrets under the shipped DynamicUser unit, through systemd credentials.

What systemd does for `LoadCredential=NAME:/etc/edged/NAME` is done here for real: a private directory holding a
copy of the secret (mode 0400), named by $CREDENTIALS_DIRECTORY in edged's environment. The broker is a real
mosquitto that requires the password (and, in the mutual-TLS test, a client certificate). What a dynamic user
meets when it opens a root-only file is reproduced by running edged as root without CAP_DAC_OVERRIDE (setpriv),
so the kernel's ordinary permission check applies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.broker import BrokerTls, Mosquitto, broker_for_tests, make_password_file, require_mosquitto
from test_mqtt_tls import issue, make_ca

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
PASSWORD = "s3cret-for-cam"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwords = make_password_file(tmp_path / "passwd", {"cam": PASSWORD})
    with broker_for_tests(tmp_path / "broker", password_file=passwords) as running:
        yield running


def credentials(folder: Path, files: dict[str, str | bytes]) -> Path:
    """A credentials directory as systemd makes it: one read-only file per credential, in a read-only folder."""
    folder.mkdir(parents=True)
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        path.chmod(0o400)
    folder.chmod(0o500)
    return folder


def config(tmp_path: Path, broker: Mosquitto, publisher: str) -> Path:
    path = tmp_path / "etc" / "edged.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'device_id = "sec"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\nframes = 5\nrealtime = false\n'
        f'[publisher]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\nhomeassistant = false\n'
        f'username = "cam"\n{publisher}\n'
    )
    return path


def edged_run(path: Path, prefix: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"} | env
    argv = [*prefix, sys.executable, "-m", "edged", "run", "--config", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=environ)


def test_a_password_given_as_a_credential_logs_in(tmp_path: Path, broker: Mosquitto) -> None:
    creds = credentials(tmp_path / "run" / "credentials" / "edged.service", {"mqtt-password": PASSWORD + "\n"})
    path = config(tmp_path, broker, 'password_file = "%credentials%/mqtt-password"')
    done = edged_run(path, CREDENTIALS_DIRECTORY=str(creds))
    assert done.returncode == 0, done.stderr  # every result delivered: it logged in
    assert "MQTT: connected to" in done.stderr and "refused" not in done.stderr
    assert "as edged-sec" in broker.log_text() and "u'cam'" in broker.log_text()


def test_a_credential_outside_systemd_says_what_to_add_to_the_unit(tmp_path: Path, broker: Mosquitto) -> None:
    done = edged_run(config(tmp_path, broker, 'password_file = "%credentials%/mqtt-password"'))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "$CREDENTIALS_DIRECTORY is not set" in done.stderr
    assert "LoadCredential=mqtt-password:/etc/edged/credentials/mqtt-password" in done.stderr
    assert "edged service install --credential mqtt-password=" in done.stderr


def test_a_credential_the_unit_does_not_load_is_named(tmp_path: Path, broker: Mosquitto) -> None:
    creds = credentials(tmp_path / "creds", {"other": "x"})
    done = edged_run(config(tmp_path, broker, 'password_file = "%credentials%/mqtt-password"'),
                     CREDENTIALS_DIRECTORY=str(creds))  # fmt: skip
    assert done.returncode == 1
    assert "loads no credential named 'mqtt-password'" in done.stderr and "LoadCredential=mqtt-password:" in done.stderr


def test_an_unreadable_password_file_gets_advice_that_works_under_the_unit(tmp_path: Path, broker: Mosquitto) -> None:
    secret = tmp_path / "etc" / "mqtt-password"
    secret.parent.mkdir(parents=True)
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)  # readable by its owner only, as a secret should be
    as_a_dynamic_user: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # The dynamic user is not the file's owner: give the file to another uid, and take away root's power to
        # read anything (CAP_DAC_OVERRIDE), so the kernel refuses the read as it refuses the service's.
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
        os.chown(secret, 65534, 65534)
        as_a_dynamic_user = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    else:
        secret.chmod(0o000)
    done = edged_run(config(tmp_path, broker, f'password_file = "{secret}"'), as_a_dynamic_user)
    assert done.returncode == 1, done.stderr
    assert f"cannot read {secret} (permission denied)" in done.stderr
    assert f"edged service install --credential mqtt-password={secret}" in done.stderr
    assert 'password_file = "%credentials%/mqtt-password"' in done.stderr
    assert "edged group" not in done.stderr and "chmod 0640" not in done.stderr


def test_mutual_tls_files_as_credentials(tmp_path: Path) -> None:
    require_mosquitto()
    pki = tmp_path / "pki"
    pki.mkdir()
    trusted = make_ca(pki, "ca")
    issue(pki, "server", trusted, server=True)
    issue(pki, "client", trusted, server=False)
    tls = BrokerTls(pki / "ca.pem", pki / "server.pem", pki / "server.key", require_certificate=True)
    passwords = make_password_file(tmp_path / "passwd", {"cam": PASSWORD})
    with broker_for_tests(tmp_path / "broker", tls=tls, password_file=passwords) as broker:
        files: dict[str, str | bytes] = {
            name: (pki / name).read_bytes() for name in ("ca.pem", "client.pem", "client.key")
        }
        creds = credentials(tmp_path / "creds", {"mqtt-password": PASSWORD, **files})
        path = config(
            tmp_path, broker,
            'password_file = "%credentials%/mqtt-password"\ntls_ca_file = "%credentials%/ca.pem"\n'
            'tls_cert_file = "%credentials%/client.pem"\ntls_key_file = "%credentials%/client.key"',
        )  # fmt: skip
        done = edged_run(path, CREDENTIALS_DIRECTORY=str(creds))
    assert done.returncode == 0, done.stderr
    assert "MQTT: connected to" in done.stderr
