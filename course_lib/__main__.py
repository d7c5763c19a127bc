"""``python -m course_lib <command> ...``: see :mod:`course_lib.cli`."""

from course_lib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
