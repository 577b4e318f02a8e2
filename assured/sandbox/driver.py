"""Written by unitune's sandbox, with the run's half (`driver_run.py`) beside it. The first process
(PID 1 of the run's PID namespace, where there is one) sets up what only it can, starts the run as
a new program and reaps orphans until it ends: as root (unitune's), it shows the tests' user what
that user needs of folders it may not enter (the interpreter under /root), then becomes that user,
without any capability; as a user namespace's root (another caller's), it makes the file system
read-only around the temporary folder, then drops every capability. It runs with -I -S: nothing of
the project is imported while it has privileges. The run is this program again with `--run`, which
hands over to `driver_run` (pytest, coverage, the isolation the tests see)."""
import json
import os
import re
import stat
import sys

#: The run's half (`driver_run.py`) as unitune.assured.sandbox.programs writes it beside this file.
RUN_MODULE = "unitune_sandbox_driver_run"

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
              "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
_libc = None


def load_run():
    """`driver_run`, imported by path: with -I, this file's folder is not on sys.path."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), RUN_MODULE + ".py")
    spec = importlib.util.spec_from_file_location(RUN_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


driver_run = load_run()


def libc():
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return _libc


def mount(source, target, flags, kind=None, data=None):
    import ctypes

    def encoded(text):
        return text.encode() if isinstance(text, str) else text

    if libc().mount(encoded(source), encoded(target), encoded(kind), flags, encoded(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), target)


def unescape(text):
    """A path of /proc/self/mountinfo, where space, tab, newline and backslash are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def read_only_world(writable):
    """Remount every file system read-only in this mount namespace, except `writable` (bound onto
    themselves first, so they are mounts of their own) and /proc, /sys, /dev. True when all worked."""
    try:
        mount(None, "/", MS_REC | MS_PRIVATE)
        for path in writable:
            mount(path, path, MS_BIND | MS_REC)
        with open("/proc/self/mountinfo") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return False
    complete = True
    for fields in mounts:
        point, options = unescape(fields[4]), fields[5].split(",")
        if any(point == path or point.startswith(path.rstrip("/") + "/") for path in writable):
            continue
        if point in ("/proc", "/sys", "/dev") or point.startswith(("/proc/", "/sys/", "/dev/")):
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for option in options:
            flags |= KEPT_FLAGS.get(option, 0)
        try:
            mount(None, point, flags)
        except OSError:
            complete = False
    return complete


def expose(operations):
    """Show the run's user what it needs of folders it may not enter, and nothing else of them: each
    `["tmpfs", folder]` covers one with an empty tmpfs (mode 755), each `["bind", path]` binds a
    path back from the original, opened before anything covered it. Returns the paths bound back."""
    mount(None, "/", MS_REC | MS_PRIVATE)  # nothing of this reaches the caller's namespace
    originals = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for kind, path in operations if kind == "bind"}
    os.umask(0o022)
    for kind, path in operations:
        if kind == "tmpfs":
            mount("tmpfs", path, MS_NOSUID | MS_NODEV | MS_NOEXEC, "tmpfs", "mode=755,size=1m")
            continue
        bind_back(originals[path], path)
    for original in originals.values():
        os.close(original)
    return sorted(originals)


#: The places every user may write to, each given to the run as an empty tmpfs of this size.
WORLD_WRITABLE = (("/tmp", "512m"), ("/var/tmp", "512m"), ("/dev/shm", "64m"), ("/run/lock", "1m"),
                  ("/var/lock", "1m"))


def world_writable_places():
    """(folder, size) of `WORLD_WRITABLE` that exist here as world-writable folders, once each (links
    such as /var/lock -> /run/lock resolved)."""
    found = {}
    for point, size in WORLD_WRITABLE:
        real = os.path.realpath(point)
        try:
            mode = os.stat(real).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) and mode & stat.S_IWOTH and real not in found:
            found[real] = size
    return list(found.items())


def private_tmp(keep):
    """Give the run its own /tmp, /var/tmp, /dev/shm and /run/lock (every world-writable place): empty
    tmpfs mounts, size-capped, gone with the run (nothing written there outlives it, and no host socket
    there is reachable). `keep` (the temporary folder, the interpreter's folders) are bound back where
    they were, opened first."""
    mount(None, "/", MS_REC | MS_PRIVATE)  # nothing of this reaches the caller's namespace
    places = world_writable_places()
    covered = tuple(point.rstrip("/") + "/" for point, _ in places)
    keep = [os.path.realpath(path) for path in keep]
    under = [path for path in keep if path.startswith(covered) and os.path.exists(path)]
    under = [path for path in sorted(set(under)) if not any(path != other and path.startswith(other.rstrip("/") + "/")
                                                             for other in under)]
    originals = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in under}
    os.umask(0o022)
    for point, size in places:
        mount("tmpfs", point, MS_NOSUID | MS_NODEV, "tmpfs", f"mode=1777,size={size}")
    for path, original in originals.items():
        bind_back(original, path)
        os.close(original)
    return True


def bind_back(original, path):
    """Bind the folder or file opened as `original` onto `path`. Where `path` is missing (inside a
    tmpfs of ours), a mount point like the original is made first."""
    if not os.path.lexists(path):
        if stat.S_ISDIR(os.fstat(original).st_mode):
            os.makedirs(path)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "x").close()
    mount(f"/proc/self/fd/{original}", path, MS_BIND | MS_REC)


def own_proc():
    """Mount a /proc of the run's own PID namespace over the host's: other processes (their command
    lines, their environments) are no longer visible to the tests. True when it worked."""
    try:
        mount(None, "/", MS_REC | MS_PRIVATE)  # nothing of this reaches the caller's namespace
        mount("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "proc")
        return True
    except OSError as error:
        driver_run.say(f"no /proc of the run's own: {error}")
        return False


def try_private_tmp(keep):
    try:
        return private_tmp(keep)
    except OSError as error:  # a kernel or policy that refuses: the rest of the isolation still holds
        driver_run.say(f"no private /tmp for the run: {error}")
        return False


def mount_namespace():
    try:
        return os.readlink("/proc/self/ns/mnt")
    except OSError:
        return None


def drop_capabilities():
    """Empty the bounding set and forbid gaining privileges: the next program has no capability."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    for capability in range(64):
        if libc().prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: no more
            break
    libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def become(uid, gid):
    """Become the run's user for good: no supplementary group, no capability (changing the user
    from root clears the permitted and effective sets; the bounding set is emptied before, and
    no_new_privs keeps any program from granting one back)."""
    drop_capabilities()
    os.setgroups([])
    if hasattr(os, "setresgid"):
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    else:  # macOS: setgid/setuid as root set the real, effective and saved ids
        os.setgid(gid)
        os.setuid(uid)
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (uid, uid, gid, gid):
        raise PermissionError(f"still uid {os.geteuid()}, gid {os.getegid()}")



def start(python, argv):
    """Become the run: a new program, which starts without the capabilities given up above. When
    that fails the run says why (else it would end with no output and no test)."""
    try:
        os.execv(python, argv)
    except BaseException as error:
        driver_run.say(f"cannot start the tests' interpreter {python} as {driver_run.user_name()}: {error}")
    os._exit(driver_run.CANNOT_START)


def main():
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    if sys.argv[2:3] == ["--run"]:
        driver_run.child(config, json.loads(sys.argv[3]))
    seen = {"pid_namespace": os.getpid() == 1, "read_only_outside_copy": False, "exposed": [], "private_tmp": False,
            "own_proc": False}
    own_namespace = mount_namespace() not in (None, config.get("outer_mount_namespace"))
    if seen["pid_namespace"] and own_namespace and os.getuid() == 0:
        seen["own_proc"] = own_proc()
    keep = [*config.get("keep_in_tmp", []), sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
            # the interpreter's folder and the one above (a virtual environment's root, with its pyvenv.cfg:
            # under -S, sys.prefix is the base installation's)
            os.path.dirname(config.get("python") or sys.executable),
            os.path.dirname(os.path.dirname(config.get("python") or sys.executable)),
            os.path.dirname(os.path.abspath(sys.argv[0])),
            os.path.dirname(os.path.abspath(sys.argv[1])), config["cwd"], config["out"]]
    if config.get("read_only_except") and os.getuid() == 0 and own_namespace:
        seen["read_only_outside_copy"] = read_only_world(config["read_only_except"])
        seen["private_tmp"] = try_private_tmp(keep)
        drop_capabilities()
    if config.get("expose") and os.getuid() == 0 and own_namespace:  # never in the caller's namespace
        try:
            seen["exposed"] = expose(config["expose"])
        except OSError as error:
            driver_run.say(f"cannot show the tests' user the interpreter's folders: {error}")
            os._exit(driver_run.CANNOT_EXPOSE)
    if config.get("become") and os.getuid() == 0 and own_namespace:
        seen["private_tmp"] = try_private_tmp(keep)
    if config.get("become"):
        try:
            become(*config["become"])
        except OSError as error:
            driver_run.say(f"cannot become uid {config['become'][0]} to run the tests: {error}")
            os._exit(driver_run.CANNOT_BECOME)
    os.chdir(config["cwd"])  # the old working folder may be covered, or on a mount now read-only
    python = config.get("python") or sys.executable
    argv = [python, "-s", "-B", sys.argv[0], sys.argv[1], "--run", json.dumps(seen)]
    try:
        pid = os.fork()
    except OSError:  # no process to spare: become the run, without a reaper
        start(python, argv)
    if pid == 0:
        start(python, argv)
    while True:
        try:
            ended, status = os.wait()
        except ChildProcessError:
            os._exit(driver_run.CANNOT_START)
        except InterruptedError:
            continue
        if ended == pid:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
