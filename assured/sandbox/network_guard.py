"""Written by unitune's sandbox: no network for the tests it runs (every Python process loads it)."""
import socket as _socket_module
import _socket

_MESSAGE = "network disabled by unitune's sandbox"
_INTERNET = {_socket.AF_INET, getattr(_socket, "AF_INET6", _socket.AF_INET)}
_LOCAL_NAMES = {None, "", "localhost", b"localhost", "localhost.localdomain"}


def _refuse(what):
    raise PermissionError(f"{_MESSAGE} ({what})")


def _guard_method(name):
    original = getattr(_socket_module.socket, name, None)
    if original is None:
        return

    def guarded(self, *args, **kwargs):
        if self.family in _INTERNET:
            _refuse(f"socket.{name}")
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
