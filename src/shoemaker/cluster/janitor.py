"""The janitor of one attempt's temporary clone: removes it once the process that made it is
gone, however it went (a worker killed with SIGKILL cannot clean up after itself).

``python -m shoemaker.cluster.janitor DIR`` reads its stdin, a pipe whose only writer is that
process; end of file means the process closed it or died, and ``DIR`` is removed.
"""

from __future__ import annotations

import shutil
import sys


def main() -> None:
    directory = sys.argv[1]
    while sys.stdin.buffer.read(4096):
        pass
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
