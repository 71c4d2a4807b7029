"""Create servercov's folders and files so that no other local user can redirect them.

``[run] data_file`` may sit in a folder other users can write (``/tmp``):
another user could then make ``.servercov`` a symlink to a folder of theirs,
or plant a symlink named like one of our temporary files, and have a run
(often root in a container) write where they chose.  So a folder servercov
keeps its files in must be a real folder of this user (made 0700 here), and
every file it creates is opened ``O_CREAT|O_EXCL|O_NOFOLLOW``: an existing
name, symlink or not, is never written through.

Standard library only, and nothing here prints: the code that runs inside
the server processes uses it too and decides itself what a failure means.
"""

from __future__ import annotations

import os
import stat

NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePlace(Exception):
    """A folder or file servercov would use belongs to another user or is a symlink."""


def owner_name(uid: int) -> str:
    """Return ``user NAME (uid N)`` for a message, or ``uid N`` when no name is known."""
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def foreign(path: str | os.PathLike[str]) -> str | None:
    """Return why ``path`` is not this user's own (a symlink, another's), None if it is.

    A path that does not exist is nobody's: None.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(found.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"is a symlink (to {target})"
    if found.st_uid != os.geteuid():
        return (f"belongs to {owner_name(found.st_uid)}, not to this user "
                f"({owner_name(os.geteuid())})")
    return None


def private_folder(path: str | os.PathLike[str]) -> None:
    """Make ``path`` a folder of this user only (0700), or raise UnsafePlace if it cannot be.

    An existing symlink, non-folder or folder of another user is refused;
    the mode is set through a descriptor opened without following links.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    why = foreign(path)
    if why is not None:
        raise UnsafePlace(f"{os.fspath(path)} {why}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except NotADirectoryError:
        raise UnsafePlace(f"{os.fspath(path)} is not a folder") from None
    try:
        if os.fstat(fd).st_uid != os.geteuid():  # swapped since the look above
            raise UnsafePlace(f"{os.fspath(path)} {foreign(path) or 'changed owner'}")
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def check_private_folder(path: str | os.PathLike[str]) -> None:
    """Raise UnsafePlace if an existing ``path`` is a symlink or another user's."""
    why = foreign(path)
    if why is not None:
        raise UnsafePlace(f"{os.fspath(path)} {why}")


def create_new(path: str | os.PathLike[str], mode: int = 0o600) -> int:
    """Create ``path`` and return it open for writing; a stale one of ours is replaced.

    ``O_CREAT|O_EXCL|O_NOFOLLOW``: whatever else is there (a symlink planted
    by another user) is unlinked, never followed; if it cannot be unlinked,
    or is there again, the OSError is raised.
    """
    try:
        return os.open(path, NEW_FILE, mode)
    except FileExistsError:
        os.unlink(path)  # a link is removed, not followed; another's, in a sticky folder: EPERM
    return os.open(path, NEW_FILE, mode)


def claim_new(path: str | os.PathLike[str], mode: int = 0o600) -> None:
    """Create ``path`` empty (see :func:`create_new`) for a library that opens it by name."""
    os.close(create_new(path, mode))


def write_new(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` into a file created by :func:`create_new`."""
    fd = create_new(path, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def replace_atomically(path: str | os.PathLike[str], text: str,
                       temporary: str | os.PathLike[str] | None = None) -> None:
    """Write ``text`` into ``path`` whole: through ``temporary`` (default ``<path>.tmp``), renamed.

    A reader (or a SIGKILL) never meets half of it, and the temporary file
    is created as :func:`create_new` does.
    """
    temporary = temporary if temporary is not None else f"{os.fspath(path)}.tmp"
    write_new(temporary, text.encode())
    os.replace(temporary, path)


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append ``line`` to ``path`` (created 0600), never through a symlink or into another's."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "a") as f:
        if os.fstat(fd).st_uid != os.geteuid():
            raise UnsafePlace(f"{os.fspath(path)} belongs to another user")
        f.write(line + "\n")


def open_own(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """Open ``path`` with ``flags`` plus ``O_NOFOLLOW``; raise UnsafePlace if it is not ours.

    For the files that outlive one open (the run lock).
    """
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise UnsafePlace(f"{os.fspath(path)} belongs to another user")
    return fd
