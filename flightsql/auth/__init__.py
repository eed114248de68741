"""Authentication: users file, signed bearer tokens and the call authenticator."""

from flightsql.auth.authenticator import (
    AuthResult,
    Authenticator,
    load_or_create_secret,
)
from flightsql.auth.tokens import ANONYMOUS, Principal, TokenSigner
from flightsql.auth.users import UserStore, UsersFileError, add_user, hash_password

__all__ = [
    "ANONYMOUS",
    "AuthResult",
    "Authenticator",
    "Principal",
    "TokenSigner",
    "UserStore",
    "UsersFileError",
    "add_user",
    "hash_password",
    "load_or_create_secret",
]
