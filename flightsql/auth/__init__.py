"""Authentication: users file, signed bearer tokens and the call authenticator."""

from flightsql.auth.authenticator import (
    Authenticator,
    AuthResult,
    load_or_create_secret,
)
from flightsql.auth.tokens import ANONYMOUS, Claims, Principal, TokenSigner
from flightsql.auth.users import UsersFile, UsersFileError, UserStore, add_user, hash_password, remove_user

__all__ = [
    "ANONYMOUS",
    "AuthResult",
    "Authenticator",
    "Claims",
    "Principal",
    "TokenSigner",
    "UserStore",
    "UsersFile",
    "UsersFileError",
    "add_user",
    "hash_password",
    "load_or_create_secret",
    "remove_user",
]
