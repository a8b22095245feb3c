"""Every path a command reads or writes, checked once before anything is written.

A command says what each of its path flags is (a ``Role``: an input file or
folder, a database, an output file, an output folder with the files it
writes there). ``Paths.check`` resolves every path the way it will be opened
(relative or absolute, ``..``, symbolic links, ``sqlite:///``, hard links)
and refuses, as one ``ConfigError`` line:

- an output that is, or is inside, an input: a database (with its -wal,
  -shm and -journal files, which hold data too), a data or config file, a
  data folder;
- two outputs that are one file, or an output inside an output file;
- an output file whose folder is missing or is a file, or that is a folder.

An input inside an output folder is fine unless the command writes it: the
folder's files are declared one by one, so ``eval``'s ``OUT/state.db`` lives
in ``OUT`` beside ``OUT/report.md``, and ``--data OUT/report.md`` is refused.

``replacing`` and ``write_atomic`` write every output file: to a temporary
name in the same folder, renamed over the target once complete, so a failure
leaves the previous file whole and no partial one.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.secrets import redact
from llm_as_rnn.runtime.spec import parse_spec
from llm_as_rnn.runtime.storage import is_postgres, sqlite_path

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database; they hold committed data too."""


PATTERN = "*"
"""In a declared file name, what stands for any text."""


@dataclass(frozen=True)
class Role:
    """What a command does with a path flag's value."""

    kind: Literal["file", "folder", "database", "model"]
    writes: bool = False
    """The command writes there (a database is read, and written unless ``writes`` is False)."""
    files: tuple[str, ...] = ()
    """An output folder's files: the names the command writes inside it (``*`` in a
    name stands for the part only known at run time: a task's name, a budget)."""
    databases: tuple[str, ...] = ()
    """An output folder's databases: read and written inside it."""
    signature: bytes = b""
    """What an existing file must start with to be replaced (an output file: what the
    command writes; an output folder: its marker file's name, which must exist
    beside any of ``files`` already there): anything else is someone else's."""


INPUT_FILE = Role("file")
INPUT_FOLDER = Role("folder")
DATABASE = Role("database", writes=True)
READ_DATABASE = Role("database")
"""A database the command only reads (``trace``): it is opened read-only."""
MODEL = Role("model")
"""A model spec: ``hf:`` with a local folder or file reads it (a hub id or endpoint has no path)."""


def output_file(signature: bytes) -> Role:
    """Return the role of a file the command writes, replacing only one starting with ``signature``.

    An existing file that does not (a database, a data file, a page of
    another program) is refused: writing would destroy it.
    """
    return Role("file", writes=True, signature=signature)


def output_folder(files: Iterable[str], databases: Iterable[str] = (), marker: str = "") -> Role:
    """Return the role of a folder the command creates and writes ``files`` in.

    An existing folder already holding some of ``files`` is refused unless it
    also holds ``marker`` (the file the command writes first): those files
    are someone else's.
    """
    files = tuple(files)
    return Role(
        "folder", writes=True, files=files, databases=tuple(databases), signature=marker.encode()
    )


@dataclass(frozen=True)
class Place:
    """One path a command touches, resolved."""

    label: str
    """How a message names it: ``--html page.html``, ``runs/report.md (in --out runs)``."""
    flag: str
    """The flag to change to fix a refusal."""
    spelled: str
    """The path as given."""
    real: str
    """The absolute path with every symbolic link resolved (what is opened)."""
    kind: Literal["file", "folder"]
    reads: bool
    writes: bool
    database: bool = False
    in_output: bool = False
    """Its folder is an output folder of the command, created before it is written."""
    role: Role | None = None
    """The role it was declared with (an output's ``signature``, ``files``)."""


def resolved(path: str) -> str:
    """Return the absolute path that opening ``path`` reaches (symbolic links followed)."""
    return os.path.realpath(path)


def file_id(path: str) -> tuple[int, int] | None:
    """Return what makes a file the same file under any name (None if it does not exist)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def relation(child: Place, other: Place) -> Literal["same", "inside"] | None:
    """Return whether ``child`` is ``other`` (hard links too), inside it, or neither.

    An output folder's file may be declared by a pattern (``trained-memory-*.json``):
    any path it matches is that file.
    """
    if any(
        PATTERN in place.real and fnmatch.fnmatchcase(them.real, place.real)
        for place, them in ((child, other), (other, child))
    ):
        return "same"
    other_id = file_id(other.real)
    if child.real == other.real or (other_id is not None and file_id(child.real) == other_id):
        return "same"
    for ancestor in map(str, Path(child.real).parents):
        if ancestor == other.real or (other_id is not None and file_id(ancestor) == other_id):
            return "inside"
    return None


@dataclass
class Paths:
    """The paths one command reads and writes: ``add`` each flag's, then ``check``."""

    places: list[Place] = field(default_factory=list)

    def add(self, flag: str, value: str, role: Role) -> None:
        """Declare a flag's path (a PostgreSQL or in-memory database has none)."""
        if role.kind == "database":
            self.database(f"{flag} {value}", flag, value, writes=role.writes)
            return
        if role.kind == "model":
            spec = parse_spec(value)
            if spec.kind == "hf" and os.path.exists(spec.name):
                self.add(flag, spec.name, INPUT_FOLDER if os.path.isdir(spec.name) else INPUT_FILE)
            return
        kind: Literal["file", "folder"] = role.kind
        self.places.append(
            Place(
                f"{flag} {value}",
                flag,
                value,
                resolved(value),
                kind,
                reads=not role.writes,
                writes=role.writes,
                role=role,
            )
        )
        for name in role.files:
            spelled = os.path.join(value, name)
            self.places.append(
                Place(
                    f"{spelled} (in {flag} {value})",
                    flag,
                    spelled,
                    resolved(spelled),
                    "file",
                    reads=False,
                    writes=True,
                    in_output=True,
                )
            )
        for name in role.databases:
            spelled = os.path.join(value, name)
            self.database(f"{spelled} (in {flag} {value})", flag, spelled, writes=True)

    def database(self, label: str, flag: str, db: str, *, writes: bool) -> None:
        """Declare a database and the files SQLite keeps beside it (they hold data too)."""
        if is_postgres(db) or sqlite_path(db) == ":memory:":
            return
        path = sqlite_path(db)
        real = resolved(path)  # SQLite names its -wal file after the resolved path
        for suffix in ("", *SQLITE_COMPANIONS):
            named = label if not suffix else f"{path}{suffix} (beside {label})"
            self.places.append(
                Place(
                    named,
                    flag,
                    path + suffix,
                    real + suffix,
                    "file",
                    reads=True,
                    writes=writes,
                    database=True,
                )
            )

    def check(self) -> None:
        """Raise ``ConfigError`` naming the first output that would clobber something."""
        for out in self.places:
            if not out.writes:
                continue
            for other in self.places:
                if other is out or (out.database and other.database):
                    continue  # one database, declared twice (--db OUT/state.db), is one
                found = relation(out, other)
                if found is not None and (other.reads or found == "same" or other.kind == "file"):
                    raise ConfigError(clash(out, other, found))
        for out in self.places:
            if out.writes and not out.database:
                check_shape(out)


def clash(out: Place, other: Place, found: Literal["same", "inside"]) -> str:
    """Return the one-line refusal of an output that meets another path."""
    if not other.reads:
        if found == "same":
            return f"{out.label} and {other.label} are one file: give them different paths"
        return f"{out.label} is inside {other.label}, a file: give {out.flag} another path"
    if found == "same":
        return (
            f"{out.label} is the same {other.kind} as {other.label}: writing it would destroy "
            f"that input; give {out.flag} another path"
        )
    return (
        f"{out.label} is inside {other.label}: writing there would change an input; "
        f"give {out.flag} a path outside it"
    )


def check_shape(out: Place) -> None:
    """Refuse an output that cannot be written where it is: a folder, a device, no folder."""
    if out.kind == "folder":
        if os.path.exists(out.real) and not os.path.isdir(out.real):
            raise ConfigError(f"{out.flag} {out.spelled} is a file: give a folder")
    elif os.path.isdir(out.real):
        raise ConfigError(f"{out.label} is a folder: give a file path")
    elif os.path.exists(out.real) and not stat.S_ISREG(os.stat(out.real).st_mode):
        raise ConfigError(f"{out.label} is not a regular file: give a file path")
    check_owner(out)
    if out.in_output:
        return  # its folder is checked as an output itself, and created before it is written
    parent = Path(out.real).parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ConfigError(
                    f"{out.label}: {ancestor} is a file, not a folder: give {out.flag} another path"
                )
            break
    if out.kind == "file" and not parent.is_dir():
        folder = os.path.dirname(out.spelled)
        raise ConfigError(
            f"{out.label}: folder {folder} does not exist: create it first "
            f"(mkdir -p {folder}) or give {out.flag} another path"
        )


def check_owner(out: Place) -> None:
    """Refuse an output that would replace a file the command did not write."""
    role = out.role
    if role is None or not role.signature or not os.path.exists(out.real):
        return
    if out.kind == "file":
        with open(out.real, "rb") as handle:
            head = handle.read(len(role.signature) + 64).lstrip().lower()
        if not head.startswith(role.signature):
            raise ConfigError(
                f"{out.label} exists and is not what llm-as-rnn writes there: writing would "
                f"destroy it; remove it or give {out.flag} another path"
            )
        return
    marker = role.signature.decode()
    if os.path.exists(os.path.join(out.real, marker)):
        return
    theirs = [name for name in role.files if os.path.exists(os.path.join(out.real, name))]
    if theirs:
        raise ConfigError(
            f"{out.label} holds {', '.join(theirs[:3])} but no {marker}: not an output of "
            f"llm-as-rnn, writing would replace them; give {out.flag} another folder"
        )


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a file for ``path``'s new bytes; rename it over ``path`` when the block ends.

    The file is a temporary one in the same folder, where a rename is atomic:
    if the block raises, it is removed and ``path`` keeps its previous bytes.
    A symbolic link at ``path`` stays and its target is replaced; the new file
    keeps the old one's permissions (else the umask's).
    """
    target = resolved(os.fspath(path))
    folder, name = os.path.split(target)
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "wb") as handle:
            with suppress(FileNotFoundError):
                os.fchmod(descriptor, stat.S_IMODE(os.stat(target).st_mode))
            yield handle
            handle.flush()
            os.fsync(descriptor)  # the bytes are on disk before the name points at them
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through ``replacing``, every secret redacted.

    The one way text files are written: no report, page or results file can
    hold a key (``runtime.secrets.redact``) or be left half-written.
    """
    with replacing(path) as handle:
        handle.write(redact(text).encode("utf-8"))
