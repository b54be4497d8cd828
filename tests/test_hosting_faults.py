"""Every rejection a device can meet before anything is installed, against a fault-injecting host on loopback:
forged, stale, replayed, oversized or broken metadata and targets, and broken hosts. Each one is a HostingError
naming the check, and the store keeps the version it had."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from hosting_support import CLASSIFIER, NAME, YOLOV8, YOLOV8_LABELS, Repo, client_for, edged
from support.broker import free_port
from support.fault_server import Fault, FaultServer

from edged.errors import HostingError
from edged.hosting import repository
from edged.hosting.store import Store


@pytest.fixture
def installed_v1(tmp_path: Path, repo: Repo, faulty: FaultServer) -> Store:
    """A device that installed and committed version 1; the tests then publish version 2 and break something."""
    repo.publish(CLASSIFIER)
    store = Store(tmp_path / "state")
    store.startup()
    client = client_for(faulty.url, repo, tmp_path / "state")
    offer = client.check(store.local_facts())
    assert offer is not None
    installed = store.install(client.download(offer))
    store.begin_probation(installed)
    store.commit(installed)
    return store


def _v2_fails(tmp_path: Path, repo: Repo, faulty: FaultServer, store: Store, **settings: object) -> str:
    """Check and download version 2 as the device; the error message, with the store still on version 1."""
    client = client_for(faulty.url, repo, tmp_path / "state", **settings)
    with pytest.raises(HostingError) as caught:
        offer = client.check(store.local_facts())
        assert offer is not None and offer.version == 2
        store.install(client.download(offer))
    assert store.state.current is not None and store.state.current.version == 1
    assert list((tmp_path / "state" / "hosting" / "staging").iterdir()) == []  # nothing half-downloaded left
    assert {p.name for p in (tmp_path / "state" / "versions").iterdir()} == {"1"}
    return str(caught.value)


def _publish_v2(repo: Repo) -> None:
    repo.publish(YOLOV8, "--labels", YOLOV8_LABELS)


def _v2_model(repo: Repo) -> Path:
    return next((repo.path / "targets" / NAME / "2").glob("*.model.tflite"))


def test_tampered_target_is_refused(tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store) -> None:
    _publish_v2(repo)
    data = bytearray(_v2_model(repo).read_bytes())
    data[len(data) // 2] ^= 0xFF
    faulty.faults[".model.tflite"] = Fault(body=bytes(data))
    assert "length/hash check failed" in _v2_fails(tmp_path, repo, faulty, installed_v1)


def test_target_longer_than_declared_is_refused(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store
) -> None:
    _publish_v2(repo)
    faulty.faults[".model.tflite"] = Fault(append=b"\0" * 100_000)
    message = _v2_fails(tmp_path, repo, faulty, installed_v1)
    assert "length check failed" in message and "more than the" in message


def test_metadata_signed_by_an_unknown_key_is_refused(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store
) -> None:
    other = tmp_path / "other"
    assert edged("hosting", "init", other / "repo", "--keys", other / "keys") == 0
    _publish_v2(repo)
    # the other repository's timestamp key signs this repository's newest timestamp
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata

    md = Metadata.from_bytes(repo.timestamp())
    md.signatures.clear()
    pem = (other / "keys" / "online" / "timestamp.pem").read_bytes()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    md.sign(CryptoSigner(load_pem_private_key(pem, None)))
    faulty.faults["/metadata/timestamp.json"] = Fault(body=md.to_bytes())
    assert "signature check failed" in _v2_fails(tmp_path, repo, faulty, installed_v1)


def test_a_wrong_signature_is_refused(tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store) -> None:
    _publish_v2(repo)
    forged = json.loads(repo.timestamp())
    forged["signed"]["expires"] = "2099-01-01T00:00:00Z"  # changed after signing
    faulty.faults["/metadata/timestamp.json"] = Fault(body=json.dumps(forged).encode())
    assert "signature check failed" in _v2_fails(tmp_path, repo, faulty, installed_v1)


def test_expired_timestamp_is_refused(tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store) -> None:
    _publish_v2(repo)
    repository.refresh(repo.path, repo.keys, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8))
    assert "expiry check failed" in _v2_fails(tmp_path, repo, faulty, installed_v1)


def test_replayed_older_timestamp_is_refused(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store
) -> None:
    old = repo.timestamp()  # the timestamp the device has already seen
    _publish_v2(repo)
    client_for(faulty.url, repo, tmp_path / "state").catalog()  # the device sees the new one
    faulty.faults["/metadata/timestamp.json"] = Fault(body=old)
    client = client_for(faulty.url, repo, tmp_path / "state")
    with pytest.raises(HostingError, match="rollback check failed"):
        client.catalog()


def test_replayed_older_targets_is_refused(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store
) -> None:
    old_version = repository.status(repo.path).metadata_versions["targets"]
    old = (repo.path / "metadata" / f"{old_version}.targets.json").read_bytes()
    _publish_v2(repo)
    faulty.faults[f"/{old_version + 1}.targets.json"] = Fault(body=old)  # the old targets under the new name
    assert "length/hash check failed" in _v2_fails(tmp_path, repo, faulty, installed_v1)


def test_metadata_that_is_not_json_is_refused(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store
) -> None:
    _publish_v2(repo)
    faulty.faults["/metadata/timestamp.json"] = Fault(body=b"<html>Welcome to our CDN</html>")
    assert "metadata was rejected" in _v2_fails(tmp_path, repo, faulty, installed_v1)


def test_metadata_far_over_the_size_cap_is_refused(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store
) -> None:
    _publish_v2(repo)
    faulty.faults["/metadata/timestamp.json"] = Fault(huge=50 * 1024 * 1024)
    message = _v2_fails(tmp_path, repo, faulty, installed_v1)
    assert "length check failed" in message and "16384" in message
    assert faulty.requests.count("/metadata/timestamp.json") >= 1


@pytest.mark.parametrize(("status", "words"), [(404, "HTTP 404"), (500, "HTTP 500"), (403, "HTTP 403")])
def test_http_errors_name_the_status(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store, status: int, words: str
) -> None:
    _publish_v2(repo)
    faulty.faults[".model.tflite"] = Fault(status=status)
    assert words in _v2_fails(tmp_path, repo, faulty, installed_v1)


def test_a_connection_reset_mid_download(tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store) -> None:
    _publish_v2(repo)
    faulty.faults[".model.tflite"] = Fault(reset_after=10_000)
    message = _v2_fails(tmp_path, repo, faulty, installed_v1)
    assert "connection broke" in message or "download failed" in message, message


def test_a_slow_drip_times_out(tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store) -> None:
    _publish_v2(repo)
    faulty.faults[".model.tflite"] = Fault(drip_interval_s=0.05)  # 1 byte each 50 ms: 57 KB would take 48 min
    message = _v2_fails(tmp_path, repo, faulty, installed_v1, download_deadline_s=1.5)
    assert "timed out" in message


def test_a_redirect_is_followed_and_what_it_serves_is_still_verified(
    tmp_path: Path, repo: Repo, faulty: FaultServer, installed_v1: Store
) -> None:
    _publish_v2(repo)
    mirror = repo.path / "mirror"
    shutil.copytree(repo.path / "targets", mirror)
    model = _v2_model(repo)
    name = f"/mirror/{NAME}/2/{model.name}"
    faulty.faults[f"/targets/{NAME}/2/{model.name}"] = Fault(redirect_to=name)
    client = client_for(faulty.url, repo, tmp_path / "state")
    offer = client.check(installed_v1.local_facts())
    assert offer is not None
    assert installed_v1.install(client.download(offer)).version == 2
    assert name in faulty.requests
    tampered = bytearray(model.read_bytes())
    tampered[100] ^= 1
    (mirror / NAME / "2" / model.name).write_bytes(bytes(tampered))
    installed_v1.rollback("test", block=False)
    shutil.rmtree(tmp_path / "state" / "versions" / "2")
    client = client_for(faulty.url, repo, tmp_path / "state")
    offer = client.check(installed_v1.local_facts())
    assert offer is not None
    with pytest.raises(HostingError, match="length/hash check failed"):
        client.download(offer)


def test_an_unreachable_host_names_the_host(tmp_path: Path, repo: Repo) -> None:
    repo.publish(CLASSIFIER)
    client = client_for(f"http://127.0.0.1:{free_port()}/", repo, tmp_path / "state")
    with pytest.raises(HostingError, match="cannot reach the repository host"):
        client.check()


def test_a_missing_or_invalid_trusted_root(tmp_path: Path, repo: Repo, faulty: FaultServer) -> None:
    from edged.config.hosting import HostingConfig
    from edged.hosting.client import HostingClient

    for root, words in ((tmp_path / "nope.json", "does not exist"), (CLASSIFIER, "not a valid TUF root.json")):
        config = HostingConfig(url=faulty.url, name=NAME, trusted_root=root)
        with pytest.raises(HostingError, match=words):
            HostingClient(config, tmp_path / "state", "d").catalog()
