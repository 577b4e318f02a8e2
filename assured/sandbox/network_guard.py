"""Written by unitune's sandbox: no network for the tests it runs (every Python process loads it), and no
filesystem socket outside the run's own folder (a host service listening at /var/tmp/x.sock or
/run/dbus/..., or an abstract address, which a run without a network namespace would share)."""
import os as _os
import socket as _socket_module
import _socket

_MESSAGE = "network disabled by unitune's sandbox"
_INTERNET = {_socket.AF_INET, getattr(_socket, "AF_INET6", _socket.AF_INET)}
_LOCAL_NAMES = {None, "", "localhost", b"localhost", "localhost.localdomain"}


def _refuse(what):
    raise PermissionError(f"{_MESSAGE} ({what})")


_UNIX = getattr(_socket, "AF_UNIX", None)
# read once, as the process starts: a test that changes the environment changes nothing here
_RUN_FOLDER = _os.path.realpath(_os.environ.get("UNITUNE_SANDBOX_RUN_FOLDER") or "/nonexistent-unitune-run")


def _outside_the_run(address):
    """Whether a Unix socket address is somewhere tests may not reach: an abstract one, or a path
    outside the run's folder (links resolved)."""
    if isinstance(address, (bytes, bytearray)):
        address = bytes(address).decode("utf-8", "surrogateescape")
    if not isinstance(address, str):
        return False  # not an address this guard can judge; the call fails on its own
    if not address or address.startswith("\0"):
        return True
    path = _os.path.realpath(address)
    return path != _RUN_FOLDER and not path.startswith(_RUN_FOLDER + _os.sep)


def _guard_method(name):
    original = getattr(_socket_module.socket, name, None)
    if original is None:
        return

    def guarded(self, *args, **kwargs):
        if self.family in _INTERNET:
            _refuse(f"socket.{name}")
        if _UNIX is not None and self.family == _UNIX and args:
            address = args[0] if name in ("connect", "connect_ex") else args[-1]
            if name == "sendmsg" and len(args) < 4:
                address = None  # a connected socket's sendmsg names no address
            if name == "sendto" and len(args) < 2:
                address = None
            if address is not None and _outside_the_run(address):
                _refuse(f"socket.{name} to a Unix socket outside the run ({address!r})")
        return original(self, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__unitune_guard__ = True
    setattr(_socket_module.socket, name, guarded)


def _numeric(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0]
    for family in (_socket.AF_INET, getattr(_socket, "AF_INET6", None)):
        if family is None:
            continue
        try:
            _socket.inet_pton(family, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def _guard_lookup(module, name):
    original = getattr(module, name, None)
    if original is None:
        return

    def guarded(host, *args, **kwargs):
        if host not in _LOCAL_NAMES and not _numeric(host):
            _refuse(f"looking up {host!r}")
        return original(host, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__unitune_guard__ = True
    setattr(module, name, guarded)


for _name in ("connect", "connect_ex", "sendto", "sendmsg"):
    _guard_method(_name)
for _module in (_socket_module, _socket):
    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        _guard_lookup(_module, _name)
del _name, _module
