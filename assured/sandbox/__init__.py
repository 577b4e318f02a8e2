"""Running generated tests where they cannot hurt: a temporary copy, limits, no network, clean env.

`run_tests` runs one test file of a project against its focal code and reports pass / fail / error /
timeout with the line and branch coverage of the focal function. It backs `validate = "run"` in
generation and can serve evaluation. Nothing here imports torch.

How a run is contained, layer by layer (`sandbox_isolation()` says which are active here; each
result's `isolation` says what the tests themselves saw):

1. A temporary copy. The project's files (no `.git`, virtual environments, `node_modules`, caches,
   `.unitune`, files over 10 MB) are copied into a fresh folder, `extra_files` written over them;
   the tests run with that copy as their working folder, `HOME` and `TMPDIR` inside the temporary
   folder, and the folder is deleted afterwards. A driver of unitune's starts the run (it sets up
   what needs privileges first, with the interpreter's `-I -S`: nothing of the project is imported
   while it has them).
2. A clean environment: `PATH`, `HOME`, `TMPDIR`, `LANG`, `PYTHONPATH` (the copy, its `src/`),
   `PYTHONDONTWRITEBYTECODE`, `PYTHONNOUSERSITE` and little else (of the caller's variables only
   `LD_LIBRARY_PATH` and `TZ`): no proxies, tokens or secrets of the caller; the interpreter runs
   with `-s` (no user site-packages).
3. Limits (`setrlimit`, set by util-linux `prlimit` before anything of the run starts, else in the
   child before exec; inherited by every process the tests start): address space (`memory_mb`),
   processes (`max_processes` more than the sandbox user already has), CPU seconds (a little over
   `timeout`), file size (128 MB), open files, no core dumps.
4. A time limit on the wall clock: the run gets its own session and process group, and the whole
   group is killed (SIGKILL) at `timeout`; whatever is left afterwards (a process that left the
   group with `setsid`) is found by a marker in its environment and killed too.
5. No network, twice: a `sitecustomize` (first on `PYTHONPATH`, so every Python process of the run
   loads it) makes `connect`/`connect_ex`/`sendto`/`sendmsg` on internet sockets and host-name
   lookups raise `PermissionError("network disabled by unitune's sandbox")` before anything is sent;
   and, where the kernel allows it, the run gets new network and PID namespaces (util-linux
   `unshare --net --pid --fork --kill-child`): no interface but a loopback that is down, so even
   code that goes around Python's `socket` (a C library, `curl`) reaches nothing; the PID namespace
   ends every process of the run when it ends. Root needs CAP_SYS_ADMIN (which some containers
   withhold); other users need unprivileged user namespaces (`unshare --user`), which most
   distributions allow. Without util-linux `unshare`, root gets the network namespace from
   `unshare(2)` in the child.
6. The user's files out of reach:
   - unitune running as root: the tests run as `nobody` (the driver gives up root before they
     start: no supplementary groups, no capability left even in the bounding set, `no_new_privs`),
     so they cannot write the user's files nor read its private ones, and RLIMIT_NPROC, which the
     kernel never enforces for root, holds. Only the copy belongs to `nobody`. The run also gets a
     mount namespace (`unshare --mount`): when the interpreter lies in a folder `nobody` may not
     enter (a pyenv or a virtual environment under `/root`, mode 700), that folder is covered there
     with an empty tmpfs and only what the interpreter needs (its prefixes, the folders on its
     `sys.path`, the links to its program) is bound back, so `nobody` runs the very interpreter
     unitune would and sees nothing else of the folder. Where no mount namespace can be made (root
     without CAP_SYS_ADMIN), such an interpreter is refused with a `SandboxError` that says what to
     do; it is never run with a capability to read every file;
   - any other user: in the user namespace (where the run's first process is root) a mount
     namespace, in which every file system but the temporary folder (and /proc, /sys, /dev) is
     remounted read-only; then every capability is dropped and the tests run without any.

Limits of the containment: without user namespaces (a kernel or a policy that forbids them to
users other than root), the tests of a non-root user run as that user, so files the user can write
(outside the copy; `HOME` and `TMPDIR` point into it) are writable by an absolute path; the limits,
the process-group kill and the `sitecustomize` guard still hold. Where the run has its own mount
namespace, every world-writable place (`/tmp`, `/var/tmp`, `/dev/shm`, `/run/lock`) is an empty tmpfs of
its own and /proc is its PID namespace's; without one they are the host's. The guard refuses Unix
sockets outside the run's folder (and abstract ones) to Python's `socket` module, not to code that
calls the kernel itself. What remains possible: a test may create a user namespace of its own
(`unshare -r`), where it has every capability over what that namespace owns and nothing more of the
host's. Nothing here is a defence against code written to escape (a kernel exploit); it keeps the
mistakes of generated tests (a loop, a fork, a write to a hard-coded path, a download, a local
service) away from the user's machine.

The package, one concern per module: `running` (`run_tests`, `run_rounds`, the wall-clock kill),
`isolation` (the plan per interpreter, limits, the project's interpreter), `workspace` (the copy),
`results` (the result types, reading reports) and `programs` (the programs that run inside,
shipped as `driver.py` with `driver_run.py`, and `network_guard.py`).
"""

from unitune.assured.sandbox.isolation import (  # noqa: F401  (the package's interface)
    MAX_OPEN_FILES, MAX_WRITTEN_FILE_BYTES, PASSED_THROUGH_ENV, project_python, sandbox_isolation, which_python,
)
from unitune.assured.sandbox.results import (  # noqa: F401
    ERROR, FAILED, NETWORK_MESSAGE, PASSED, TIMEOUT, Round, RoundResult, SandboxError, SandboxResult, TestOutcome,
)
from unitune.assured.sandbox.running import RunSpec, run_rounds, run_tests  # noqa: F401
from unitune.assured.sandbox.workspace import (  # noqa: F401
    MAX_COPY_BYTES, MAX_COPY_FILES, MAX_FILE_BYTES, SKIPPED_SUFFIXES, copy_project,
)
