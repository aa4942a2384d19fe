"""A project folder: `environments/` with value files and `templates/` with Jinja templates."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autodevhub_cli.core.errors import ConfigError

PROJECT_DIR_VARIABLE = "AUTODEVHUB_PROJECT_DIR"


@dataclass(frozen=True)
class Project:
    """The folder a command works on."""

    root: Path

    @property
    def environments_dir(self) -> Path:
        """Where `<env>.yaml` value files live."""
        return self.root / "environments"

    @property
    def templates_dir(self) -> Path:
        """Where `compose/` and `kubernetes/` templates live."""
        return self.root / "templates"

    @property
    def state_dir(self) -> Path:
        """Where autodevhub keeps its own records for this project (releases, locks, caches)."""
        return self.root / ".autodevhub"

    def environment_file(self, name: str) -> Path:
        """The value file of environment `name`."""
        return self.environments_dir / f"{name}.yaml"

    def environment_names(self) -> list[str]:
        """Names of the environments; files starting with `_` are shared bases, not environments."""
        if not self.environments_dir.is_dir():
            return []
        return sorted(
            p.stem
            for p in self.environments_dir.glob("*.yaml")
            if not p.name.startswith(("_", "."))
        )


def find_project(project_dir: str | os.PathLike[str] | None = None) -> Project:
    """The project in `project_dir`, else $AUTODEVHUB_PROJECT_DIR, else the current folder."""
    chosen = project_dir or os.environ.get(PROJECT_DIR_VARIABLE) or os.getcwd()
    root = Path(chosen).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(
            f"Project folder {root} "
            + ("is a file, not a folder." if root.exists() else "does not exist."),
            hint="Pass --project-dir (or set AUTODEVHUB_PROJECT_DIR) to a folder that holds "
            "environments/ and templates/.",
        )
    missing = [d for d in ("environments", "templates") if not (root / d).is_dir()]
    if missing:
        raise ConfigError(
            f"{root} is not an autodevhub project: it has no "
            f"{' or '.join(m + '/' for m in missing)}.",
            hint="Run the command from the project root, or pass --project-dir / set "
            "AUTODEVHUB_PROJECT_DIR to the folder that holds environments/ and templates/.",
        )
    return Project(root)
