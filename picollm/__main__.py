"""`python -m picollm ...`: the same command as the `picollm` console script."""

from picollm.cli import main

if __name__ == "__main__":
    main()
