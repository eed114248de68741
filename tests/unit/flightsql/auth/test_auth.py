"""Unit tests of flightsql.auth: users file, tokens and the authenticator."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import argon2
import pytest

from flightsql.auth import (
    ANONYMOUS,
    Authenticator,
    AuthResult,
    Claims,
    Principal,
    TokenSigner,
    UsersFile,
    UserStore,
    UsersFileError,
    add_user,
    hash_password,
    load_or_create_secret,
    remove_user,
)
from flightsql.auth import authenticator as authenticator_module
from flightsql.auth import users as users_module
from flightsql.errors import FlightSqlError, Unauthenticated, Unavailable

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
NOW = 1_700_000_000.0
PRODUCTION_HASHER = users_module._HASHER


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use cheap argon2id parameters so the tests run fast."""
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    monkeypatch.setattr(users_module, "_HASHER", hasher)


def basic(user: str, password: str) -> dict[str, str]:
    """Request metadata carrying Basic credentials."""
    raw = f"{user}:{password}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def bearer(token: str) -> dict[str, str]:
    """Request metadata carrying a bearer token."""
    return {"authorization": f"Bearer {token}"}


def token_of(result: AuthResult) -> str:
    """The bearer token handed out in the response headers of ``result``."""
    assert len(result.response_headers) == 1
    name, value = result.response_headers[0]
    assert name == "authorization"
    scheme, token = value.split(" ")
    assert scheme == "Bearer"
    return token


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    add_user(path, "alice", "wonderland")
    add_user(path, "bob", "builder")
    return path


@pytest.fixture
def store(users_file: Path) -> UserStore:
    return UserStore.load(users_file)


@pytest.fixture
def auth(store: UserStore) -> Authenticator:
    return Authenticator(store, TokenSigner(SECRET))


# --- users file -------------------------------------------------------------


class TestHashing:
    def test_hash_is_argon2id_and_not_plain(self) -> None:
        hashed = hash_password("secret-pw")
        assert hashed.startswith("$argon2id$")
        assert "secret-pw" not in hashed

    def test_hashes_are_salted(self) -> None:
        assert hash_password("same") != hash_password("same")

    def test_production_hasher_is_argon2id(self) -> None:
        assert PRODUCTION_HASHER.type is argon2.Type.ID
        assert PRODUCTION_HASHER.memory_cost >= 19 * 1024


class TestUsersFile:
    def test_password_never_stored_plain(self, users_file: Path) -> None:
        text = users_file.read_text()
        assert "wonderland" not in text and "builder" not in text
        for line in text.splitlines():
            user, _, hashed = line.partition(":")
            assert user in {"alice", "bob"}
            assert hashed.startswith("$argon2id$")

    def test_verify_right_wrong_unknown(self, store: UserStore) -> None:
        assert store.verify("alice", "wonderland")
        assert store.verify("bob", "builder")
        assert not store.verify("alice", "builder")
        assert not store.verify("alice", "")
        assert not store.verify("carol", "wonderland")
        assert not store.verify("", "")

    def test_unknown_user_spends_a_hash_verification(
        self, store: UserStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[str] = []

        class CountingHasher(argon2.PasswordHasher):
            def verify(self, hash: str | bytes, password: str | bytes) -> bool:
                calls.append(str(hash))
                return super().verify(hash, password)

        monkeypatch.setattr(users_module, "_HASHER", CountingHasher())
        assert not store.verify("nobody", "pw")
        assert not store.verify("alice", "pw")
        assert len(calls) == 2
        # The dummy hash has the cost parameters of the stored hashes.
        stored = argon2.extract_parameters(calls[1])
        assert argon2.extract_parameters(calls[0]) == stored

    def test_empty_store_rejects_everyone(self) -> None:
        empty = UserStore({})
        assert len(empty) == 0
        assert not empty.verify("alice", "pw")

    def test_comments_and_blank_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        path.write_text(
            "# the users\n\n   \n"
            f"alice:{hash_password('a')}\n"
            "  # indented comment\n"
            f"  bob:{hash_password('b')}  \n"
        )
        store = UserStore.load(path)
        assert store.usernames() == ("alice", "bob")
        assert "alice" in store and "carol" not in store
        assert store.verify("bob", "b")

    @pytest.mark.parametrize(
        ("line", "fragment"),
        [
            ("no-colon-here", "expected 'username:hash'"),
            (":{hash}", "user name is empty"),
            ("al ice:{hash}", "may not contain ':' or whitespace"),
            ("alice:hunter2", "plain-text passwords are refused"),
            ("alice:", "plain-text passwords are refused"),
            ("alice:$2b$12$abcdefghijklmnopqrstuv", "not an argon2id hash"),
            ("alice:$argon2id$garbage", "malformed"),
            ("alice:$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", "argon2id"),
        ],
    )
    def test_malformed_line_names_file_and_line(
        self, tmp_path: Path, line: str, fragment: str
    ) -> None:
        path = tmp_path / "users"
        good = f"bob:{hash_password('b')}"
        bad = line.format(hash=hash_password("x"))
        path.write_text(f"# comment\n{good}\n\n{bad}\n")
        with pytest.raises(UsersFileError) as info:
            UserStore.load(path)
        message = str(info.value)
        assert str(path) in message
        assert "line 4" in message
        assert fragment in message

    def test_duplicate_user(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        path.write_text(f"alice:{hash_password('a')}\nalice:{hash_password('b')}\n")
        with pytest.raises(UsersFileError, match=r"line 2: .*defined on line 1"):
            UserStore.load(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "absent"
        with pytest.raises(UsersFileError, match="cannot read users file"):
            UserStore.load(path)

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        path.write_bytes(b"\xff\xfe:x\n")
        with pytest.raises(UsersFileError, match="UTF-8"):
            UserStore.load(path)

    def test_constructor_refuses_plain_hash(self) -> None:
        with pytest.raises(ValueError, match="plain-text"):
            UserStore({"alice": "hunter2"})


class TestAddUser:
    def test_creates_file_with_mode_0600(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        assert add_user(path, "alice", "pw") is True
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert UserStore.load(path).verify("alice", "pw")

    def test_update_replaces_password_and_keeps_rest(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        path.write_text(
            "# header comment\n"
            f"alice:{hash_password('old')}\n"
            "\n"
            f"bob:{hash_password('b')}\n"
        )
        assert add_user(path, "alice", "new") is False
        lines = path.read_text().splitlines()
        assert lines[0] == "# header comment"
        assert lines[1].startswith("alice:$argon2id$")
        assert lines[2] == ""
        assert lines[3].startswith("bob:")
        assert len(lines) == 4
        store = UserStore.load(path)
        assert store.verify("alice", "new")
        assert not store.verify("alice", "old")
        assert store.verify("bob", "b")

    def test_update_tightens_mode(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        path.write_text(f"alice:{hash_password('a')}\n")
        path.chmod(0o644)
        add_user(path, "bob", "b")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_appends_after_file_without_trailing_newline(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        path.write_text(f"alice:{hash_password('a')}")
        add_user(path, "bob", "b")
        assert UserStore.load(path).usernames() == ("alice", "bob")
        assert path.read_text().endswith("\n")

    def test_replaces_file_atomically(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        add_user(path, "alice", "a")
        inode = path.stat().st_ino
        add_user(path, "bob", "b")
        assert path.stat().st_ino != inode  # a new file was moved into place
        assert sorted(p.name for p in tmp_path.iterdir()) == ["users"]

    def test_failed_replace_leaves_file_and_no_temp(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "users"
        add_user(path, "alice", "a")
        before = path.read_text()

        def broken(src: str, dst: str) -> None:
            raise OSError("disk on fire")

        monkeypatch.setattr(users_module.os, "replace", broken)
        with pytest.raises(OSError, match="disk on fire"):
            add_user(path, "bob", "b")
        assert path.read_text() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["users"]

    def test_refuses_to_rewrite_malformed_file(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        path.write_text("alice:plaintext\n")
        with pytest.raises(UsersFileError, match="line 1"):
            add_user(path, "bob", "b")
        assert path.read_text() == "alice:plaintext\n"

    @pytest.mark.parametrize("user", ["", "a:b", "a b", "tab\there", "nl\n"])
    def test_bad_user_name(self, tmp_path: Path, user: str) -> None:
        with pytest.raises(ValueError):
            add_user(tmp_path / "users", user, "pw")
        assert not (tmp_path / "users").exists()

    def test_empty_password(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="password is empty"):
            add_user(tmp_path / "users", "alice", "")

    def test_unicode_password(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        add_user(path, "jörg", "pässwörd✓")
        assert UserStore.load(path).verify("jörg", "pässwörd✓")


# --- tokens -----------------------------------------------------------------


class TestTokens:
    def test_issue_and_verify(self) -> None:
        signer = TokenSigner(SECRET, ttl_seconds=60)
        token = signer.issue("alice", now=NOW)
        assert token.startswith("v2.")
        assert token.count(".") == 2
        claims = signer.verify(token, now=NOW + 1)
        assert claims == Claims("alice", NOW + 60, "")

    def test_payload_fields(self) -> None:
        token = TokenSigner(SECRET, ttl_seconds=60).issue("alice", now=NOW)
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded))
        assert decoded == {"user": "alice", "iat": int(NOW), "exp": int(NOW) + 60, "stamp": ""}

    def test_default_clock(self) -> None:
        signer = TokenSigner(SECRET)
        assert signer.verify(signer.issue("alice")).user == "alice"

    def test_expiry(self) -> None:
        signer = TokenSigner(SECRET, ttl_seconds=60)
        token = signer.issue("alice", now=NOW)
        assert signer.verify(token, now=NOW + 59.9).user == "alice"
        with pytest.raises(Unauthenticated, match="token expired"):
            signer.verify(token, now=NOW + 60)
        with pytest.raises(Unauthenticated, match="token expired"):
            signer.verify(token, now=NOW + 10_000)

    def test_other_node_with_same_secret_accepts(self) -> None:
        token = TokenSigner(SECRET).issue("alice", now=NOW)
        other_node = TokenSigner(bytes(SECRET))
        assert other_node.verify(token, now=NOW).user == "alice"

    def test_wrong_secret_rejected(self) -> None:
        token = TokenSigner(SECRET).issue("alice", now=NOW)
        with pytest.raises(Unauthenticated, match="token signature invalid"):
            TokenSigner(OTHER_SECRET).verify(token, now=NOW)

    def test_tampered_payload(self) -> None:
        signer = TokenSigner(SECRET)
        version, _, signature = signer.issue("alice", now=NOW).split(".")
        forged = json.dumps({"user": "admin", "iat": int(NOW), "exp": int(NOW) + 3600})
        token = f"{version}.{b64url(forged.encode())}.{signature}"
        with pytest.raises(Unauthenticated, match="token signature invalid"):
            signer.verify(token, now=NOW)

    def test_extended_expiry_rejected(self) -> None:
        signer = TokenSigner(SECRET, ttl_seconds=60)
        version, _, signature = signer.issue("alice", now=NOW).split(".")
        forged = json.dumps({"user": "alice", "iat": int(NOW), "exp": int(NOW) + 10**9})
        with pytest.raises(Unauthenticated, match="token signature invalid"):
            signer.verify(f"{version}.{b64url(forged.encode())}.{signature}", now=NOW)

    @pytest.mark.parametrize("position", [0, 10, -1])
    def test_tampered_signature(self, position: int) -> None:
        signer = TokenSigner(SECRET)
        head, signature = signer.issue("alice", now=NOW).rsplit(".", 1)
        chars = list(signature)
        chars[position] = "A" if chars[position] != "A" else "B"
        with pytest.raises(Unauthenticated, match="token signature invalid"):
            signer.verify(f"{head}.{''.join(chars)}", now=NOW)

    def test_padded_or_truncated_signature_rejected(self) -> None:
        signer = TokenSigner(SECRET)
        token = signer.issue("alice", now=NOW)
        for bad in (token + "=", token[:-1], token + "A"):
            with pytest.raises(Unauthenticated, match="token signature invalid"):
                signer.verify(bad, now=NOW)

    def test_unknown_version(self) -> None:
        signer = TokenSigner(SECRET)
        token = signer.issue("alice", now=NOW)
        with pytest.raises(Unauthenticated, match="token version not supported"):
            signer.verify("v9" + token[2:], now=NOW)

    def test_version_1_tokens_say_log_in_again(self) -> None:
        signer = TokenSigner(SECRET)
        with pytest.raises(Unauthenticated, match="log in again"):
            signer.verify("v1" + signer.issue("alice", now=NOW)[2:], now=NOW)

    def test_a_lifetime_beyond_the_servers_is_refused(self) -> None:
        """A token signed with the right key but claiming years of life (as a leaked key
        would make) is refused: the signer's lifetime is also the maximum."""
        long_lived = TokenSigner(SECRET, ttl_seconds=3 * 365 * 86400).issue("alice", now=NOW)
        with pytest.raises(Unauthenticated, match="longer than the 3600 s"):
            TokenSigner(SECRET, ttl_seconds=3600).verify(long_lived, now=NOW + 1)

    def test_a_token_from_the_future_is_refused(self) -> None:
        token = TokenSigner(SECRET, ttl_seconds=60).issue("alice", now=NOW + 3600)
        with pytest.raises(Unauthenticated, match="future"):
            TokenSigner(SECRET, ttl_seconds=60).verify(token, now=NOW)
        # a clock a few seconds apart between nodes is tolerated
        token = TokenSigner(SECRET, ttl_seconds=60).issue("alice", now=NOW + 5)
        assert TokenSigner(SECRET, ttl_seconds=60).verify(token, now=NOW).user == "alice"

    @pytest.mark.parametrize(
        "token",
        [
            "",
            "garbage",
            "v1.",
            "v1..",
            "v1.a",
            "a.b.c.d",
            "v1.x.y.z",
            "...",
            "x" * 5000,
        ],
    )
    def test_malformed_token(self, token: str) -> None:
        with pytest.raises(Unauthenticated):
            TokenSigner(SECRET).verify(token, now=NOW)

    @pytest.mark.parametrize(
        "payload",
        [
            b"not json",
            b"\xff\xfe",
            b"[1, 2]",
            b'{"user": "alice"}',
            b'{"user": "", "iat": 1, "exp": 9999999999}',
            b'{"user": 5, "iat": 1, "exp": 9999999999}',
            b'{"user": "alice", "iat": 1, "exp": "9999999999"}',
            b'{"user": "alice", "iat": true, "exp": 9999999999}',
            b'{"user": "alice", "iat": 1, "exp": NaN}',
        ],
    )
    def test_signed_but_malformed_payload(self, payload: bytes) -> None:
        signer = TokenSigner(SECRET)
        head = f"v2.{b64url(payload)}"
        token = f"{head}.{signer._sign(head)}"
        with pytest.raises(Unauthenticated, match="token payload malformed"):
            signer.verify(token, now=NOW)

    def test_non_base64_payload_with_valid_signature(self) -> None:
        signer = TokenSigner(SECRET)
        head = "v2.not*base64"
        with pytest.raises(Unauthenticated, match="token payload malformed"):
            signer.verify(f"{head}.{signer._sign(head)}", now=NOW)

    def test_unicode_user(self) -> None:
        signer = TokenSigner(SECRET)
        assert signer.verify(signer.issue("jörg", now=NOW), now=NOW).user == "jörg"

    def test_bad_construction(self) -> None:
        with pytest.raises(ValueError, match="at least"):
            TokenSigner(b"short")
        with pytest.raises(ValueError, match="positive"):
            TokenSigner(SECRET, ttl_seconds=0)
        with pytest.raises(ValueError):
            TokenSigner(SECRET).issue("")

    def test_principal_is_frozen(self) -> None:
        principal = Principal("alice", None)
        with pytest.raises(AttributeError):
            principal.user = "bob"  # type: ignore[misc]
        assert ANONYMOUS == Principal("anonymous", None)

    def test_unauthenticated_is_flight_sql_error(self) -> None:
        with pytest.raises(FlightSqlError):
            TokenSigner(SECRET).verify("nope")


# --- authenticator ----------------------------------------------------------


class TestAuthenticator:
    def test_basic_login_returns_bearer(self, auth: Authenticator) -> None:
        result = auth.authenticate(basic("alice", "wonderland"), now=NOW)
        assert result.principal.user == "alice"
        token = token_of(result)
        follow_up = auth.authenticate(bearer(token), now=NOW + 10)
        assert follow_up == AuthResult(Principal("alice", NOW + 3600), (), result.session_id)

    def test_each_login_opens_its_own_session_and_its_token_names_it(self, auth: Authenticator) -> None:
        first = auth.authenticate(basic("alice", "wonderland"), now=NOW)
        second = auth.authenticate(basic("alice", "wonderland"), now=NOW)
        assert first.session_id and second.session_id and first.session_id != second.session_id
        assert token_of(first) != token_of(second)  # same user, same second: still two sessions
        for login in (first, second):
            assert auth.authenticate(bearer(token_of(login)), now=NOW).session_id == login.session_id

    def test_bearer_accepted_by_other_node(self, store: UserStore) -> None:
        node_a = Authenticator(store, TokenSigner(SECRET))
        node_b = Authenticator(store, TokenSigner(SECRET))
        token = token_of(node_a.authenticate(basic("bob", "builder"), now=NOW))
        assert node_b.authenticate(bearer(token), now=NOW).principal.user == "bob"

    def test_bearer_from_other_cluster_rejected(self, store: UserStore) -> None:
        token = TokenSigner(OTHER_SECRET).issue("alice", now=NOW)
        auth = Authenticator(store, TokenSigner(SECRET))
        with pytest.raises(Unauthenticated, match="token signature invalid"):
            auth.authenticate(bearer(token), now=NOW)

    def test_expired_bearer(self, auth: Authenticator) -> None:
        token = token_of(auth.authenticate(basic("alice", "wonderland"), now=NOW))
        with pytest.raises(Unauthenticated, match="token expired"):
            auth.authenticate(bearer(token), now=NOW + 3600)

    def test_wrong_password(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated) as info:
            auth.authenticate(basic("alice", "wrong"))
        assert info.value.message == "invalid user or password"

    def test_unknown_user_same_message(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated) as info:
            auth.authenticate(basic("mallory", "wonderland"))
        assert info.value.message == "invalid user or password"

    def test_password_with_colon(self, tmp_path: Path) -> None:
        path = tmp_path / "users"
        add_user(path, "carol", "pa:ss:word")
        auth = Authenticator(UserStore.load(path), TokenSigner(SECRET))
        assert auth.authenticate(basic("carol", "pa:ss:word")).principal.user == "carol"

    @pytest.mark.parametrize(
        "metadata",
        [
            {},
            {"x-other": "value"},
            {"authorization": ""},
            {"authorization": "Digest abc"},
            {"authorization": "Token abc"},
        ],
    )
    def test_missing_or_unknown_header(
        self, auth: Authenticator, metadata: dict[str, str]
    ) -> None:
        with pytest.raises(Unauthenticated) as info:
            auth.authenticate(metadata)
        assert info.value.message == (
            "authentication required: log in with user and password (Basic) "
            "or a bearer token"
        )

    @pytest.mark.parametrize(
        "value",
        [
            "Basic",
            "Basic ",
            "Basic !!!not-base64!!!",
            "Basic YWxpY2U",  # bad padding
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic " + base64.b64encode(b":password").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(),
            "Basic ünïcode",
            "Basic " + "A" * 10_000,
            "Bearer",
            "Bearer ",
            "Bearer not-a-token",
            "Bearer v1.a.b",
            "Bearer two words",
        ],
    )
    def test_malformed_headers_raise_unauthenticated_only(
        self, auth: Authenticator, value: str
    ) -> None:
        with pytest.raises(Unauthenticated):
            auth.authenticate({"authorization": value})

    def test_non_string_header_values(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated):
            auth.authenticate({"authorization": b"\xff"})  # type: ignore[dict-item]
        with pytest.raises(Unauthenticated):
            auth.authenticate({"authorization": 42})  # type: ignore[dict-item]

    def test_scheme_is_case_insensitive(self, auth: Authenticator) -> None:
        raw = base64.b64encode(b"alice:wonderland").decode()
        result = auth.authenticate({"authorization": f"basic  {raw} "}, now=NOW)
        token = token_of(result)
        follow_up = auth.authenticate({"authorization": f"BEARER {token}"}, now=NOW)
        assert follow_up.principal.user == "alice"

    def test_header_name_in_other_case(self, auth: Authenticator) -> None:
        raw = base64.b64encode(b"alice:wonderland").decode()
        result = auth.authenticate({"Authorization": f"Basic {raw}"})
        assert result.principal.user == "alice"

    def test_bytes_header_value(self, auth: Authenticator) -> None:
        raw = base64.b64encode(b"alice:wonderland")
        metadata = {"authorization": b"Basic " + raw}
        result = auth.authenticate(metadata)  # type: ignore[arg-type]
        assert result.principal.user == "alice"

    def test_bearer_has_no_response_headers(self, auth: Authenticator) -> None:
        token = token_of(auth.authenticate(basic("alice", "wonderland")))
        assert auth.authenticate(bearer(token)).response_headers == ()

    def test_a_token_for_a_user_who_does_not_exist_is_refused(self, auth: Authenticator) -> None:
        """Signed with the right key (as by a holder of the cluster secret): still no user."""
        forged = TokenSigner(SECRET).issue("mallory", now=NOW)
        with pytest.raises(Unauthenticated, match="no longer exists"):
            auth.authenticate(bearer(forged), now=NOW)

    def test_a_token_without_the_users_stamp_is_refused(self, auth: Authenticator) -> None:
        forged = TokenSigner(SECRET).issue("alice", now=NOW)  # right key, no credential stamp
        with pytest.raises(Unauthenticated, match="password changed"):
            auth.authenticate(bearer(forged), now=NOW)

    @pytest.mark.parametrize("password", ["p", "pw", "pwd", "pass", "passw", "passwo"])
    def test_unpadded_basic_credentials_as_adbc_sends_them(self, tmp_path: Path, password: str) -> None:
        path = tmp_path / "users"
        add_user(path, "al", password)
        auth = Authenticator(UserStore.load(path), TokenSigner(SECRET))
        raw = base64.b64encode(f"al:{password}".encode()).decode()
        for value in (raw, raw.rstrip("=")):
            assert auth.authenticate({"authorization": f"Basic {value}"}).principal.user == "al"

    @pytest.mark.parametrize("value", ["YWxpY2U6d29uZGVybGFuZA===", "YWxpY2U6d29uZGVybGFuZ", "=" * 4])
    def test_impossible_base64_lengths_are_malformed(self, auth: Authenticator, value: str) -> None:
        with pytest.raises(Unauthenticated, match="malformed"):
            auth.authenticate({"authorization": f"Basic {value}"})


class TestUsersFileOnARunningNode:
    """Edits of the users file take effect at once, on logins and on tokens."""

    def _auth(self, tmp_path: Path) -> tuple[Path, Authenticator]:
        path = tmp_path / "users"
        add_user(path, "alice", "wonderland")
        add_user(path, "bob", "builder")
        return path, Authenticator(UsersFile(path), TokenSigner(SECRET))

    def test_removing_a_user_ends_their_tokens_and_logins(self, tmp_path: Path) -> None:
        path, auth = self._auth(tmp_path)
        token = token_of(auth.authenticate(basic("bob", "builder")))
        assert remove_user(path, "bob")
        with pytest.raises(Unauthenticated, match="no longer exists"):
            auth.authenticate(bearer(token))
        with pytest.raises(Unauthenticated, match="invalid user or password"):
            auth.authenticate(basic("bob", "builder"))
        assert auth.authenticate(basic("alice", "wonderland")).principal.user == "alice"
        assert not remove_user(path, "bob")

    def test_a_new_password_ends_the_old_tokens(self, tmp_path: Path) -> None:
        path, auth = self._auth(tmp_path)
        old = token_of(auth.authenticate(basic("bob", "builder")))
        add_user(path, "bob", "new-password")
        with pytest.raises(Unauthenticated, match="password changed"):
            auth.authenticate(bearer(old))
        new = token_of(auth.authenticate(basic("bob", "new-password")))
        assert auth.authenticate(bearer(new)).principal.user == "bob"

    def test_an_added_user_logs_in_without_a_restart(self, tmp_path: Path) -> None:
        path, auth = self._auth(tmp_path)
        add_user(path, "carol", "c4rol")
        assert auth.authenticate(basic("carol", "c4rol")).principal.user == "carol"

    def test_a_broken_users_file_refuses_everyone_until_fixed(self, tmp_path: Path) -> None:
        path, auth = self._auth(tmp_path)
        token = token_of(auth.authenticate(basic("alice", "wonderland")))
        good = path.read_text()
        path.write_text(good + "mallory:plain-text\n")
        for metadata in (basic("alice", "wonderland"), bearer(token)):
            with pytest.raises(Unavailable, match="users file is unusable"):
                auth.authenticate(metadata)
        path.write_text(good + "# fixed\n")
        assert auth.authenticate(bearer(token)).principal.user == "alice"

    def test_enabled_flag(self, auth: Authenticator) -> None:
        assert auth.enabled
        assert not Authenticator(None, TokenSigner(SECRET)).enabled


class TestDisabledAuth:
    @pytest.fixture
    def open_auth(self) -> Authenticator:
        return Authenticator(None, TokenSigner(SECRET))

    @pytest.mark.parametrize(
        "metadata",
        [
            {},
            {"authorization": "Bearer garbage"},
            {"authorization": "Basic !!!"},
            {"authorization": "Digest abc"},
            {"authorization": 42},
        ],
    )
    def test_anonymous_without_login(
        self, open_auth: Authenticator, metadata: dict[str, str]
    ) -> None:
        assert open_auth.authenticate(metadata) == AuthResult(ANONYMOUS, ())

    def test_basic_login_still_gets_token(self, open_auth: Authenticator) -> None:
        result = open_auth.authenticate(basic("someone", "anything"), now=NOW)
        assert result.principal == ANONYMOUS
        token = token_of(result)
        assert open_auth.signer.verify(token, now=NOW).user == "someone"
        assert open_auth.authenticate(bearer(token)) == AuthResult(ANONYMOUS, ())


# --- shared secret ----------------------------------------------------------


class TestSecret:
    def test_created_with_mode_0600_and_stable(self, tmp_path: Path) -> None:
        path = tmp_path / "secret"
        first = load_or_create_secret(path)
        assert len(first) == 32
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == first.hex()
        assert load_or_create_secret(path) == first
        assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]

    def test_reads_existing(self, tmp_path: Path) -> None:
        path = tmp_path / "secret"
        path.write_text("ab" * 32 + "\n")
        path.chmod(0o600)
        assert load_or_create_secret(path) == bytes.fromhex("ab" * 32)

    def test_nodes_sharing_secret_file_agree(self, tmp_path: Path) -> None:
        path = tmp_path / "secret"
        signer_a = TokenSigner(load_or_create_secret(path))
        signer_b = TokenSigner(load_or_create_secret(path))
        assert signer_b.verify(signer_a.issue("alice")).user == "alice"

    @pytest.mark.parametrize("content", ["", "zz" * 32, "ab" * 16, "ab" * 33])
    def test_malformed_secret(self, tmp_path: Path, content: str) -> None:
        path = tmp_path / "secret"
        path.write_text(content)
        with pytest.raises(ValueError, match="64 hex digits"):
            load_or_create_secret(path)

    def test_lost_creation_race_keeps_first_secret(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "secret"
        winner = "cd" * 32
        real_link = os.link

        def racing_link(src: str, dst: str) -> None:
            Path(dst).write_text(winner + "\n")
            real_link(src, dst)

        monkeypatch.setattr(authenticator_module.os, "link", racing_link)
        assert load_or_create_secret(path) == bytes.fromhex(winner)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]

    def test_without_hard_links(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_link(src: str, dst: str) -> None:
            raise OSError("hard links not supported")

        monkeypatch.setattr(authenticator_module.os, "link", no_link)
        path = tmp_path / "secret"
        secret = load_or_create_secret(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_or_create_secret(path) == secret
