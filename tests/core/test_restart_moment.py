"""A Rollout's restart replaces every pod that runs when it is asked for.

Argo replaces only pods created strictly before `spec.restartAt` and creation timestamps have
whole seconds: a `restartAt` rounded down to the second of a pod that a deploy had just
created kept that pod (CI saw it: one of two pods survived a `secrets rotate`).
"""

import datetime as dt

from autodevhub_cli.core.targets.kubernetes import restart_moment


def test_restart_moment_is_after_every_pod_created_until_now() -> None:
    for micro in (0, 1, 500_000, 999_999):
        now = dt.datetime(2026, 12, 7, 2, 33, 33, micro, tzinfo=dt.UTC)
        created = now.replace(microsecond=0)  # the API server's timestamp for a pod made now
        moment = restart_moment(now)
        assert moment > created and moment.microsecond == 0
        assert moment - now <= dt.timedelta(seconds=1)
