"""The cluster's ZooKeeper credential file: created private, parsed strictly."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flightmanager.zk import credential


def test_a_created_credential_is_private_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "zk.credential"
    created = credential.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credential.load(path) == created
    assert created.password not in repr(created)
    assert created.auth_data == [("digest", f"{created.user}:{created.password}")]
    (acl,) = created.acl
    assert acl.id.scheme == "digest" and acl.perms == 31  # all permissions, for this credential only


def test_a_credential_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "zk.credential"
    first = credential.create(path)
    with pytest.raises(FileExistsError):
        credential.create(path)
    assert credential.load_or_create(path) == first


def test_two_credentials_differ(tmp_path: Path) -> None:
    assert credential.create(tmp_path / "a").password != credential.create(tmp_path / "b").password


@pytest.mark.parametrize("text", ["", "nopassword", ":secretsecretsecret", "user:short", "us er:0123456789abcdef0",
                                  "user:0123456789abc def"])
def test_malformed_credentials_are_refused_with_the_file_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "zk.credential"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path)):
        credential.load(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read ZooKeeper credential"):
        credential.load(tmp_path / "absent")
