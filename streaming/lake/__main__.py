"""`python -m streaming.lake [--available-now]`: the lake job without the CLI wiring."""

from __future__ import annotations

import argparse
from pathlib import Path

from paywall.settings import get_settings
from streaming.lake.job import run_lake_stream


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streaming.lake")
    parser.add_argument("--available-now", action="store_true", help="stop once caught up")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--topics", default=None, help="comma-separated; default: paywall.*")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    args = parser.parse_args(argv)
    run_lake_stream(
        get_settings(),
        available_now=args.available_now,
        checkpoint=args.checkpoint,
        topics=args.topics.split(",") if args.topics else None,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
    )


if __name__ == "__main__":
    main()
