"""What the parity scripts share: checks that print and are counted, and the command line
(the executables to test and --keep DIR) with the working directory and the final summary."""

import os
import sys
import tempfile
import time

_results = []  # (name, ok, detail)
_run = {}      # start time, workdir, keep, tmp


def check(name, ok, detail=""):
    _results.append((name, bool(ok), detail))
    print(("ok    " if ok else "FAIL  ") + name + (f"  ({detail})" if detail else ""), flush=True)
    return ok


def start(usage, executables, prefix):
    """sys.argv: `executables` paths and an optional --keep DIR. Returns (absolute paths, working
    directory): DIR, kept, or a temporary directory. Prints `usage` and exits 2 on bad arguments."""
    args = sys.argv[1:]
    keep = None
    if "--keep" in args:
        i = args.index("--keep")
        keep = args[i + 1] if i + 1 < len(args) else ""
        del args[i:i + 2]
    if len(args) != executables or keep == "":
        print(usage)
        sys.exit(2)
    paths = [os.path.abspath(a) for a in args]
    for exe in paths:
        if not os.access(exe, os.X_OK):
            print(f"not an executable: {exe}")
            sys.exit(2)
    tmp = None
    if keep:
        os.makedirs(keep, exist_ok=True)
        workdir = keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        workdir = tmp.name
    _run.update(start=time.time(), workdir=workdir, keep=keep, tmp=tmp)
    return paths, workdir


def finish():
    """Prints how many checks passed, removes a temporary working directory; the exit status."""
    elapsed = time.time() - _run["start"]
    failed = [r for r in _results if not r[1]]
    print(f"\n{len(_results) - len(failed)}/{len(_results)} checks passed in {elapsed:.1f} s"
          + (f" (files kept in {_run['workdir']})" if _run["keep"] else ""))
    if _run["tmp"]:
        _run["tmp"].cleanup()
    return 1 if failed else 0
