"""`python -m service` serves the app; `python -m service migrate` applies the migrations;
`python -m service worker` runs the generation queue in its own process (with /healthz, /readyz
and /metrics on PORT), for when the API processes run with PROCESS_ROLE=api."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def settings_error_text(exc: ValidationError) -> str:
    """One line per bad setting; an unsafe one is its own paragraph, which names the setting.

    Only the messages are shown, never the values (they may be secrets).
    """
    from service.settings import UNSAFE_SETTING

    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        if error["type"] == UNSAFE_SETTING:
            lines.append(f"  {error['msg']}")
        else:
            lines.append(f"  {'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}")
    return "invalid settings:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the command, load settings, run it; exit 2 on bad settings."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument(
        "command", nargs="?", choices=["serve", "migrate", "worker"], default="serve"
    )
    args = parser.parse_args(argv)

    from service.logs import configure_logging
    from service.settings import get_settings, load_settings

    try:
        # The worker serves no API: validated as one, it needs no API_KEYS.
        settings = (
            load_settings(process_role="worker") if args.command == "worker" else get_settings()
        )
    except ValidationError as exc:
        print(settings_error_text(exc), file=sys.stderr)
        return 2
    configure_logging(settings.log_level)

    from service.migrate import upgrade

    if args.command == "migrate":
        upgrade(settings)
        return 0
    if settings.should_migrate_on_start and args.command != "worker":
        upgrade(settings)  # the API's job; a worker waits (503 on /readyz) until it is done

    import uvicorn

    from service.server import uvicorn_options

    if args.command == "worker":
        from service.main import create_app

        uvicorn.run(create_app(settings), **uvicorn_options(settings))
        return 0
    uvicorn.run("service.main:app", workers=settings.workers, **uvicorn_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
