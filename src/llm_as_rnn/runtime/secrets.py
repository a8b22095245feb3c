"""Credentials: held as a type from the moment they are read, hidden by value wherever we write.

An API key is a ``Secret`` (a pydantic ``SecretStr``) from the moment it is
read (``--api-key``, ``OPENAI_API_KEY``); the credentials of a URL
(``--base-url``, ``OPENAI_BASE_URL``, a ``postgresql://`` database) are
registered where the URL enters (``register_url``). ``redact`` is the one
function that hides them: in any text it replaces every registered value,
the value of every credential-named environment variable (``*_KEY``,
``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``), the credentials of every URL found
in the environment, the ``user:password@`` part of every URL and the value
of every credential-named query parameter (``?api_key=``, ``&sig=``). What we
write (evaluation files, HTML pages, the command line's output and errors)
passes through it, so a secret is hidden by its value, whichever flag,
variable or error message carried it.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import re
import sys
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

MASK = "REDACTED"
"""What a secret is replaced with."""

MIN_LENGTH = 8
"""Values shorter than this are not replaced: dummy keys of local servers
(``unused``, ``EMPTY``) are ordinary words, and hiding them would garble the
text and results they occur in."""

_REGISTERED: set[str] = set()
"""The secret values this process has seen, in every form they may be written in."""

_CREDENTIAL_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
# scheme://userinfo@ : the userinfo runs to the authority's last "@" (greedy),
# never past the end of the authority or of a quoted string.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#'\"<>]*@")
# ?name=value / &name=value: a name is a short word (so a "data:...;base64,..." image
# is not a parameter), its value runs to the next parameter, fragment or quote.
_QUERY_PARAM = re.compile(r"([?&]([\w.\-\[\]%]{1,64})=)([^&#\s'\"<>]+)")
# A parameter carrying a credential, by its name: api_key, apikey, access_token,
# client_secret, password, pwd, sig (Azure SAS), X-Amz-Signature, X-Amz-Credential,
# auth, code (OAuth), session... Found by the words in it, not listed one by one.
_CREDENTIAL_PARAM = re.compile(
    r"key|token|secret|passw|pwd|signature|(?<![a-z])sig(?![a-z])|auth|credential|code|"
    r"session|jwt|bearer",
    re.IGNORECASE,
)


class Secret(SecretStr):
    """A credential: prints as ``**********``, and ``redact`` hides its value everywhere.

    It is a ``SecretStr``, so LangChain models take it as ``api_key`` as it is.
    """

    def __init__(self, secret_value: str) -> None:
        super().__init__(secret_value)
        register(secret_value)


@functools.cache  # the same key is met on every model call (an endpoint's backend is looked up)
def forms(value: str) -> frozenset[str]:
    """Return the ways a value may be written: raw, JSON- and HTML-escaped, %-encoded, decoded."""
    if len(value) < MIN_LENGTH:
        return frozenset()
    written = (
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        quote(value, safe=""),
        unquote(value),  # a URL's password is given encoded, and may be shown decoded
    )
    return frozenset(form for form in written if len(form) >= MIN_LENGTH)


def register(value: str) -> None:
    """Have ``redact`` hide a value from now on, in this process."""
    _REGISTERED.update(forms(value))


def query_credentials(url: str) -> list[str]:
    """Return the values of a URL's credential-named query parameters (``api_key=...``)."""
    return [
        value
        for found in _QUERY_PARAM.finditer(url)
        if _CREDENTIAL_PARAM.search(unquote(found[2]))
        for value in (found[3], unquote(found[3]))
    ]


def _mask_query(text: str) -> str:
    """Return ``text`` with the value of every credential-named query parameter masked."""

    def mask(found: re.Match[str]) -> str:
        return found[1] + MASK if _CREDENTIAL_PARAM.search(unquote(found[2])) else found[0]

    return _QUERY_PARAM.sub(mask, text)


def url_credentials(url: str) -> list[str]:
    """Return a URL's credentials: its credential-named query values, and its userinfo.

    The userinfo as ``user:password`` and the password, or the user alone.
    """
    if "@" not in url:
        return query_credentials(url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL after all (a bad port, say)
        return []
    userinfo = parts.netloc.rpartition("@")[0]
    # HTTP clients send user:password as Basic auth, base64-encoded: an error may echo it.
    basic = base64.b64encode(unquote(userinfo).encode()).decode() if password else ""
    return [value for value in (userinfo, password, basic) if value] + query_credentials(url)


def register_url(url: str) -> str:
    """Register a URL's credentials as secrets; return the URL unchanged."""
    for value in url_credentials(url):
        register(value)
    return url


def public_url(url: str) -> str:
    """Return a URL without its credentials (what may be stored, hashed or shown).

    The ``user:password@`` part is dropped; a credential-named query parameter
    stays, its value masked, so the URL's identity does not depend on the secret.
    """
    return _mask_query(_USERINFO.sub(r"\1", url))


def env_secret(name: str) -> Secret | None:
    """Return an environment variable as a ``Secret`` (None when unset or empty)."""
    value = os.environ.get(name)
    return Secret(value) if value else None


def secret_values() -> set[str]:
    """Return every value ``redact`` hides now: the registered ones and the environment's."""
    found: set[str] = set()
    for name, value in os.environ.items():
        if _CREDENTIAL_NAME.search(name):
            found |= forms(value)
        if "://" in value:
            for credential in url_credentials(value):
                found |= forms(credential)
    return found | _REGISTERED


def redact(text: str) -> str:
    """Return ``text`` with every secret value and every URL's credentials replaced by ``MASK``."""
    for value in sorted(secret_values(), key=len, reverse=True):  # a longer one holds a shorter
        text = text.replace(value, MASK)
    return _mask_query(_USERINFO.sub(rf"\1{MASK}@", text))


def scrub(exc: BaseException) -> BaseException:
    """Redact an error's message, and its causes', in place; return the error.

    A server may quote a request's credentials back in its error; once
    scrubbed, the error can be printed, stored (a checkpointer records a
    failed node's error) or sent to another process as it is.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        if isinstance(getattr(current, "message", None), str):  # openai's errors keep a copy
            current.message = redact(current.message)  # type: ignore[attr-defined]
        current = current.__cause__ or current.__context__
    return exc


class RedactingStream:
    """A text stream that passes every write through ``redact``; anything else goes through."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write ``text``, redacted; return the length given (as the caller wrote it)."""
        self.stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each line, redacted."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def redact_output() -> None:
    """Redact everything this process prints on stdout and stderr from now on.

    Every printer then hides secrets, whoever it is: our errors and logs,
    rich's views, ``--json`` lines, a library's warning, a traceback.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))
