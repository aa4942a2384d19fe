"""`python -m service` serves the app; `python -m service migrate` applies the migrations;
`python -m service worker` runs the generation queue in its own process (with /healthz, /readyz
and /metrics on PORT), for when the API processes run with PROCESS_ROLE=api."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    """Parse the command, load settings, run it; exit 2 on bad settings."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument(
        "command", nargs="?", choices=["serve", "migrate", "worker"], default="serve"
    )
    args = parser.parse_args(argv)

    from service.logs import configure_logging
    from service.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        print("invalid settings:\n" + "\n".join(lines), file=sys.stderr)
        return 2
    configure_logging(settings.log_level)

    from service.migrate import upgrade

    if args.command == "migrate":
        upgrade(settings)
        return 0
    if settings.should_migrate_on_start and args.command != "worker":
        upgrade(settings)  # the API's job; a worker waits (503 on /readyz) until it is done

    import uvicorn

    if args.command == "worker":
        from service.main import create_app

        worker = settings.model_copy(update={"process_role": "worker"})
        uvicorn.run(
            create_app(worker),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
        )
        return 0
    uvicorn.run(
        "service.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
